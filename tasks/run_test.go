package tasks_test

import (
	"log/slog"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/beatlock/beat/tasks"
)

func TestRunEnv(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		run  tasks.Run
		want []string
	}{
		{
			name: "whole seconds stay RFC 3339",
			run: tasks.Run{Task: "backup", InstanceID: "pod-a", FencingToken: 42,
				ScheduledAt: time.Date(2026, 11, 27, 13, 0, 5, 0, time.UTC)},
			want: []string{"BEAT_TASK=backup", "BEAT_SCHEDULED_AT=2026-11-27T13:00:05Z", "BEAT_INSTANCE_ID=pod-a", "BEAT_FENCING_TOKEN=42"},
		},
		{
			name: "sub-second keeps its precision",
			run: tasks.Run{Task: "t", InstanceID: "i", FencingToken: 1,
				ScheduledAt: time.Date(2026, 11, 27, 13, 0, 5, 250_000_000, time.UTC)},
			want: []string{"BEAT_TASK=t", "BEAT_SCHEDULED_AT=2026-11-27T13:00:05.25Z", "BEAT_INSTANCE_ID=i", "BEAT_FENCING_TOKEN=1"},
		},
		{
			name: "other zones are rendered in UTC",
			run: tasks.Run{Task: "t", InstanceID: "i", FencingToken: math.MaxUint64,
				ScheduledAt: time.Date(2026, 11, 27, 14, 0, 0, 0, berlin)},
			want: []string{"BEAT_TASK=t", "BEAT_SCHEDULED_AT=2026-11-27T13:00:00Z", "BEAT_INSTANCE_ID=i", "BEAT_FENCING_TOKEN=18446744073709551615"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.run.Env(); !slices.Equal(got, tt.want) {
				t.Errorf("Env() = %q\nwant    %q", got, tt.want)
			}
		})
	}
}

func TestRunLog(t *testing.T) {
	own := slog.New(slog.DiscardHandler)
	if got := (tasks.Run{Logger: own}).Log(); got != own {
		t.Errorf("Log() = %p, want the run's own logger %p", got, own)
	}
	if got := (tasks.Run{}).Log(); got == nil || got == slog.Default() {
		t.Errorf("Log() with no logger = %p; want the default logger with the run's attributes", got)
	}
}

type reportArgs struct {
	Recipients []string `json:"recipients"`
	Retries    int      `json:"retries"`
	Options    struct {
		Format string `json:"format"`
	} `json:"options"`
	Embedded
	Ignored string `json:"-"`
}

type Embedded struct {
	Verbose bool `json:"verbose,omitempty"`
}

func TestDecodeArgs(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic

	tests := []struct {
		name    string
		args    map[string]any
		target  func() any
		want    any
		wantErr string
	}{
		{
			name: "struct",
			args: map[string]any{"recipients": []any{"a@x", "b@x"}, "retries": 3, "options": map[string]any{"format": "pdf"}, "verbose": true},
			want: func() any {
				var r reportArgs
				r.Recipients, r.Retries, r.Options.Format, r.Verbose = []string{"a@x", "b@x"}, 3, "pdf", true
				return r
			}(),
		},
		{
			name: "nil args decode to zero value",
			args: nil,
			want: reportArgs{},
		},
		{
			name:    "unknown top-level args listed with the valid ones",
			args:    map[string]any{"recipient": []any{"a"}, "retry": 1},
			wantErr: "args.recipient: unknown argument; valid arguments: options, recipients, retries, verbose|args.retry: unknown argument",
		},
		{
			name:    "field named on type mismatch",
			args:    map[string]any{"retries": "three"},
			wantErr: "args.retries: got a string, want an integer (int)",
		},
		{
			name:    "nested field path",
			args:    map[string]any{"options": map[string]any{"format": 1}},
			wantErr: "args.options.format: got a number, want a string",
		},
		{
			name:    "nested unknown field",
			args:    map[string]any{"options": map[string]any{"fromat": "pdf"}},
			wantErr: `unknown nested argument "fromat"`,
		},
		{
			name:    "fraction into an integer",
			args:    map[string]any{"retries": 1.5},
			wantErr: "args.retries: got the number 1.5",
		},
		{
			name:    "NaN cannot be encoded",
			args:    map[string]any{"retries": math.NaN()},
			wantErr: "args: |finite numbers",
		},
		{
			name:    "cycle is an error, not a crash",
			args:    cyclic,
			wantErr: "nested more than",
		},
		{
			name:   "map target with YAML's map[any]any",
			args:   map[string]any{"m": map[any]any{1: "one", "two": 2}},
			target: func() any { return &map[string]any{} },
			want:   map[string]any{"m": map[string]any{"1": "one", "two": float64(2)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := any(&reportArgs{})
			if tt.target != nil {
				target = tt.target()
			}
			err := tasks.DecodeArgs(tt.args, target)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			got := derefAny(target)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded %#v\nwant    %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeArgsBadTarget(t *testing.T) {
	var nilPtr *reportArgs
	for _, target := range []any{nil, reportArgs{}, nilPtr} {
		err := tasks.DecodeArgs(map[string]any{}, target)
		checkErr(t, err, "pass a non-nil pointer")
	}
}

func TestRunDecodeArgsNamesTask(t *testing.T) {
	run := tasks.Run{Task: "nightly-report", Args: map[string]any{"retries": "x"}}
	var a reportArgs
	checkErr(t, run.DecodeArgs(&a), `task "nightly-report": args.retries`)
}
