package e2e

// Replicas that go away: killed with SIGKILL, or stopped with SIGTERM in a
// rolling restart.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestCrash(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	var tasks []taskSpec
	for i := 1; i <= 6; i++ {
		tasks = append(tasks, every(fmt.Sprintf("forbid-%d", i), time.Second, 200*time.Millisecond, "Forbid"))
	}
	tasks = append(tasks,
		every("allow-1", time.Second, 200*time.Millisecond, "Allow"),
		every("allow-2", time.Second, 200*time.Millisecond, "Allow"),
		cronEvery("cron2s", 2, 200*time.Millisecond, "Forbid"))
	c := newCluster(t, clusterConfig{ttl: ttl, renew: time.Second, tasks: tasks})
	c.startN(3)
	up := time.Now()
	end := up.Add(runFor(30 * time.Second))
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("random seed %d", seed)

	// Every 2-5 s a random replica dies and a new one (new instance id)
	// takes its place.
	var kills []time.Time
	for {
		next := time.Now().Add(2*time.Second + time.Duration(rng.Int64N(int64(3*time.Second))))
		if next.After(end.Add(-2 * time.Second)) {
			break
		}
		sleepUntil(next)
		live := c.live()
		kills = append(kills, c.crash(live[rng.IntN(len(live))]))
		c.start()
	}
	sleepUntil(end)
	c.stopAll()
	time.Sleep(500 * time.Millisecond) // runs orphaned by a kill record their end

	// A kill loses the ticks the victim had claimed and not yet started, and
	// under Forbid the ticks after them until its lock expires: all within
	// [kill - 1s, kill + ttl + 1s].
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second),
		fmt.Sprintf("%d replicas killed with SIGKILL; misses are ticks the victim had claimed but not started, "+
			"and (Forbid) ticks found busy until its lock expired (ttl %v)", len(kills), ttl))
	all := rep.Total()
	if all.Expected == 0 || len(kills) == 0 {
		t.Fatalf("nothing judged: %d ticks, %d kills", all.Expected, len(kills))
	}
	if all.Dups != 0 {
		t.Errorf("ticks run more than once: %v", all.Duplicated)
	}
	if all.Stray != 0 {
		t.Errorf("%d runs of ticks that are not ticks of their schedule", all.Stray)
	}
	for _, m := range rep.unexplained() {
		explained := false
		for _, k := range kills {
			if !m.Tick.Before(k.Add(-time.Second)) && !m.Tick.After(k.Add(ttl+time.Second)) {
				explained = true
			}
		}
		if !explained {
			t.Errorf("%s missed, not within [kill-1s, kill+ttl+1s] of any kill, nor skipped as busy", m)
		}
	}
	t.Logf("%d kills, %d misses, all near a kill", len(kills), all.Misses)
}

func TestRollingRestart(t *testing.T) {
	t.Parallel()
	tasks := []taskSpec{
		every("quick-1", time.Second, 0, "Forbid"),
		every("quick-2", time.Second, 0, "Forbid"),
		every("quick-3", time.Second, 0, "Allow"),
		every("overlapping", time.Second, 1500*time.Millisecond, "Allow"), // always running somewhere
		every("every2s-runs1s", 2*time.Second, time.Second, "Forbid"),
		cronEvery("cron3s", 3, 0, "Forbid"),
	}
	c := newCluster(t, clusterConfig{ttl: 3 * time.Second, renew: time.Second, shutdownTimeout: 10 * time.Second, tasks: tasks})
	c.startN(3)
	up := time.Now()
	end := up.Add(runFor(30 * time.Second))

	// Replace the oldest replica, as a Deployment's rolling update does:
	// start the new one, then SIGTERM the old one and wait for it to exit.
	// Each of the first three is replaced, however short the run.
	stopped := map[string]bool{}
	for len(stopped) < 3 || time.Now().Add(5*time.Second).Before(end) {
		time.Sleep(1500 * time.Millisecond)
		old := c.live()[0]
		c.start()
		c.stop(old)
		stopped[old.id] = true
	}
	end = later(end, time.Now().Add(3*time.Second))
	sleepUntil(end)
	// While the replacements run, nothing in Redis may name a stopped replica.
	for _, p := range c.keysOf(stopped) {
		t.Errorf("after SIGTERM: %s", p)
	}
	ids := map[string]bool{}
	for _, r := range c.all() {
		ids[r.id] = true
	}
	c.stopAll()
	// Once every replica has stopped, nothing names any of them, and
	// nothing but the tasks' claim records is left: no lock, no owner index.
	for _, p := range c.keysOf(ids) {
		t.Errorf("after every replica stopped: %s", p)
	}
	for _, k := range c.keys() {
		if !strings.HasPrefix(k, c.prefix+"state:") {
			t.Errorf("after every replica stopped: key %q is left", k)
		}
	}

	runs := c.runs()
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second),
		fmt.Sprintf("%d replicas replaced one at a time (SIGTERM after the replacement started)", len(stopped)))
	exactlyOnce(t, rep)
	checkRuns(t, rep, runs)
	c.checkLogs()
}

// keysOf returns what is wrong in the cluster's keys for the given
// instances: a string (a lock) or a hash field (a task's state) whose value
// is one of them, or an owner index ("<prefix>owner:<id>", a sorted set of
// lock keys) of one of them that still names a live lock of it.
func (c *cluster) keysOf(ids map[string]bool) []string {
	c.t.Helper()
	ctx := context.Background()
	rc := c.redis.client()
	defer rc.Close()
	var problems []string
	iter := rc.Scan(ctx, 0, c.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		typ, err := rc.Type(ctx, key).Result()
		if err != nil {
			c.t.Fatal(err)
		}
		switch rest := strings.TrimPrefix(key, c.prefix); {
		case typ == "string":
			if v, err := rc.Get(ctx, key).Result(); err == nil && ids[v] {
				ttl := rc.PTTL(ctx, key).Val()
				problems = append(problems, fmt.Sprintf("key %q holds the id of %s (expires in %v)", key, v, ttl))
			}
		case typ == "hash":
			fields, err := rc.HGetAll(ctx, key).Result()
			if err != nil {
				c.t.Fatal(err)
			}
			for f, v := range fields {
				if ids[v] {
					problems = append(problems, fmt.Sprintf("hash %q field %q holds the id of %s", key, f, v))
				}
			}
		case typ == "zset" && strings.HasPrefix(rest, "owner:") && ids[strings.TrimPrefix(rest, "owner:")]:
			id := strings.TrimPrefix(rest, "owner:")
			members, err := rc.ZRange(ctx, key, 0, -1).Result()
			if err != nil {
				c.t.Fatal(err)
			}
			live := 0
			for _, m := range members {
				if v, err := rc.Get(ctx, c.prefix+"lock:"+m).Result(); err == nil && v == id {
					live++
					problems = append(problems, fmt.Sprintf("owner index %q names lock %q, still held by %s", key, m, id))
				}
			}
			if live == 0 {
				c.t.Logf("owner index %q of %s is left, with no live lock in it: %v", key, id, members)
			}
		}
	}
	if err := iter.Err(); err != nil {
		c.t.Fatal(err)
	}
	return problems
}

// keys lists the cluster's keys in Redis.
func (c *cluster) keys() []string {
	c.t.Helper()
	ctx := context.Background()
	rc := c.redis.client()
	defer rc.Close()
	keys, err := rc.Keys(ctx, c.prefix+"*").Result()
	if err != nil {
		c.t.Fatal(err)
	}
	return keys
}
