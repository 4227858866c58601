package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beatlock/beat/cli"
)

// TestShippedSchedulesValidate keeps the schedules that ship with beat valid:
// the one `go run ./cmd/beat run` uses, the one in the image, and the one in
// the Kubernetes ConfigMap.
func TestShippedSchedulesValidate(t *testing.T) {
	manifest, err := os.ReadFile("../../deploy/kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The ConfigMap's schedule.yaml is the block indented under "schedule.yaml: |".
	_, block, ok := strings.Cut(string(manifest), "  schedule.yaml: |\n")
	if !ok {
		t.Fatal("deploy/kubernetes.yaml: no schedule.yaml in the ConfigMap")
	}
	block, _, _ = strings.Cut(block, "\n---")
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "    "))
	}
	configMap := filepath.Join(t.TempDir(), "configmap-schedule.yaml")
	if err := os.WriteFile(configMap, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BEAT_REDIS_URL": "redis://redis:6379/0"}
	for _, path := range []string{"../../schedule.yaml", "../../deploy/schedule.yaml", configMap} {
		var out, errb bytes.Buffer
		code := cli.Main(context.Background(), []string{"validate", "--config", path},
			cli.WithOutput(&out, &errb),
			cli.WithLookupEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
		if code != 0 || !strings.Contains(out.String(), "ok") {
			t.Errorf("beat validate --config %s = %d\n%s%s", path, code, out.String(), errb.String())
		}
	}
}
