// Package e2e holds beat's process-level tests: they build the real beat
// binary, run several replicas of it against a redis-server of their own,
// kill and restart replicas and the store, cut a replica off the store, skew
// replica clocks, and judge from what the tasks recorded whether every tick
// ran exactly once. See docs/RELIABILITY.md.
//
//	go test ./e2e/                                   # short versions
//	go test ./e2e/ -long -parallel 8 -timeout 30m    # 10 minutes per scenario
package e2e
