// Package beatbin builds the beat binary for tests that run it as a process.
package beatbin

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Build compiles ./cmd/beat of this module into out, with the given build
// tags (e2e uses "beattest" for its clock-offset hook).
func Build(out string, tags ...string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	args := []string{"build"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, "-o", out, "./cmd/beat")...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/beat in %s: %w\n%s", root, err, b)
	}
	return nil
}
