//go:build beattest

package cli

import (
	"os"
	"time"
)

// testClockOffset reads BEAT_TEST_CLOCK_OFFSET (a Go duration such as -2s),
// so that process-level tests can run replicas whose clocks disagree. Only
// binaries built with -tags beattest have it.
func testClockOffset() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("BEAT_TEST_CLOCK_OFFSET"))
	return d
}
