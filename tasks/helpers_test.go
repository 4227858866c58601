package tasks_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beatlock/beat/tasks"
)

func derefAny(v any) any {
	return reflect.ValueOf(v).Elem().Interface()
}

// logCapture collects slog JSON records; it is safe for concurrent writes.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// records returns every logged record, decoded.
func (c *logCapture) records(t *testing.T) []map[string]any {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(c.buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// find returns the records whose msg is msg.
func (c *logCapture) find(t *testing.T, msg string) []map[string]any {
	t.Helper()
	return slices.DeleteFunc(c.records(t), func(m map[string]any) bool { return m["msg"] != msg })
}

// builtinRun returns the built-in task type typ from the default registry
// and a run of it whose log lines go to the returned capture.
func builtinRun(t *testing.T, typ string, args map[string]any) (tasks.Func, tasks.Run, *logCapture) {
	t.Helper()
	fn, ok := tasks.Default().Lookup(typ)
	if !ok {
		t.Fatalf("%s task not registered", typ)
	}
	out := &logCapture{}
	return fn, tasks.Run{
		Task:         "backup",
		Type:         typ,
		Args:         args,
		ScheduledAt:  time.Date(2026, 11, 27, 13, 0, 5, 0, time.UTC),
		InstanceID:   "pod-a",
		FencingToken: 42,
		Logger:       slog.New(slog.NewJSONHandler(out, nil)),
	}, out
}
