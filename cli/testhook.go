//go:build !beattest

package cli

import "time"

// testClockOffset is zero in every build but the fault-injection tests'
// (build tag beattest), which skew a replica's clock on purpose.
func testClockOffset() time.Duration { return 0 }
