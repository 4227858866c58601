package tasks_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
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
