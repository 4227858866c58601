package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/beatlock/beat/cli"
	"github.com/beatlock/beat/tasks"
)

// TestValidateUsesRegisteredTask: the program's own task type is known to
// the CLI, and its validator runs at load time.
func TestValidateUsesRegisteredTask(t *testing.T) {
	reg := tasks.NewRegistry()
	if err := tasks.RegisterBuiltins(reg); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register("report", report, tasks.WithArgs(validate)); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := cli.Main(context.Background(), []string{"validate", "--config", "schedule.yaml"},
		cli.WithRegistry(reg), cli.WithOutput(&out, &errb)); code != 0 {
		t.Fatalf("validate = %d; stderr:\n%s", code, errb.String())
	}

	bad := t.TempDir() + "/bad.yaml"
	if err := os.WriteFile(bad, []byte("tasks:\n  - name: r\n    schedule: \"@hourly\"\n    task: report\n    args: {recipients: []}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := cli.Main(context.Background(), []string{"validate", "--config", bad},
		cli.WithRegistry(reg), cli.WithOutput(&out, &errb)); code != 1 || !strings.Contains(errb.String(), "args.recipients: required") {
		t.Fatalf("validate = %d; stderr:\n%s\nwant exit 1 naming args.recipients", code, errb.String())
	}
}
