package tasks_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/beatlock/beat/tasks"
)

func TestLogTask(t *testing.T) {
	logFn, ok := tasks.Default().Lookup("log")
	if !ok {
		t.Fatal("log task not registered")
	}
	tests := []struct {
		name      string
		args      map[string]any
		wantLevel string
		wantErr   string
	}{
		{"default level is info", map[string]any{"message": "still here"}, "INFO", ""},
		{"debug", map[string]any{"message": "still here", "level": "debug"}, "DEBUG", ""},
		{"warn, any case", map[string]any{"message": "still here", "level": "Warn"}, "WARN", ""},
		{"error", map[string]any{"message": "still here", "level": "error"}, "ERROR", ""},
		{"bad args fail the run", map[string]any{"message": 1}, "", `log task "heartbeat": args.message`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out logCapture
			run := tasks.Run{
				Task:         "heartbeat",
				Type:         "log",
				Args:         tt.args,
				ScheduledAt:  time.Date(2026, 11, 27, 13, 0, 5, 0, time.UTC),
				InstanceID:   "pod-a",
				FencingToken: 7,
			}
			// With no Logger set, the run's attributes come from Run.Log's
			// fallback, the default logger.
			prev := slog.Default()
			slog.SetDefault(slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
			defer slog.SetDefault(prev)
			err := logFn(context.Background(), run)
			checkErr(t, err, tt.wantErr)
			recs := out.records(t)
			if tt.wantErr != "" {
				if len(recs) != 0 {
					t.Errorf("a failed run logged %v", recs)
				}
				return
			}
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1: %v", len(recs), recs)
			}
			want := map[string]any{
				"level":    tt.wantLevel,
				"msg":      "still here",
				"task":     "heartbeat",
				"tick":     "2026-11-27T13:00:05Z",
				"instance": "pod-a",
				"token":    float64(7),
			}
			for k, v := range want {
				if recs[0][k] != v {
					t.Errorf("record[%q] = %#v, want %#v (record %v)", k, recs[0][k], v, recs[0])
				}
			}
		})
	}
}
