package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/beatlock/beat/cli"
)

// TestShippedSchedulesValidate keeps the schedules that ship with beat valid
// through `beat validate`: the one `go run ./cmd/beat run` uses and the one
// in the image. The Kubernetes ConfigMap's schedule is checked, with the rest
// of deploy/kubernetes, by the test in that folder.
func TestShippedSchedulesValidate(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, path := range []string{"../../schedule.yaml", "../../deploy/schedule.yaml"} {
		var out, errb bytes.Buffer
		code := cli.Main(context.Background(), []string{"validate", "--config", path},
			cli.WithOutput(&out, &errb), cli.WithLookupEnv(noEnv))
		if code != 0 || !strings.Contains(out.String(), "ok") {
			t.Errorf("beat validate --config %s = %d\n%s%s", path, code, out.String(), errb.String())
		}
	}
}
