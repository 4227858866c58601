// Package e2e holds beat's process-level tests: they build the real beat
// binary, run several replicas of it against a redis-server of their own,
// kill, freeze and restart replicas and the store, cut a replica off the
// store, skew replica clocks, give every replica one instance id, and judge
// from what the tasks recorded, and from a watcher of the tasks' processes,
// whether every tick ran exactly once, whether runs of a task overlapped,
// and whether a run outlived its replica. See docs/RELIABILITY.md.
//
//	go test ./e2e/                                   # default versions (about 30s each)
//	go test ./e2e/ -long -parallel 9 -timeout 45m    # 10 minutes per scenario
package e2e
