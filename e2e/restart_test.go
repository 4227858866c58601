package e2e

// Replicas that go away: killed with SIGKILL, or stopped with SIGTERM in a
// rolling restart.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beatlock/beat/internal/pgtest"
)

// The scenarios of replicas going away run on each store that keeps locks
// across processes.
var backends = []string{"redis", "postgres"}

func TestCrash(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			crash(t, backend)
		})
	}
}

func crash(t *testing.T, backend string) {
	const ttl = 2 * time.Second
	var tasks []taskSpec
	for i := 1; i <= 6; i++ {
		tasks = append(tasks, every(fmt.Sprintf("forbid-%d", i), time.Second, 200*time.Millisecond, "Forbid"))
	}
	tasks = append(tasks,
		every("allow-1", time.Second, 200*time.Millisecond, "Allow"),
		every("allow-2", time.Second, 200*time.Millisecond, "Allow"),
		cronEvery("cron2s", 2, 200*time.Millisecond, "Forbid"),
		// The case: a run longer than the ttl under Forbid, whose
		// replica dies mid-run. It must die with it, not finish into the
		// next holder's run. The second one's shell waits for a background
		// job: its grandchild must die too.
		every("every2s-runs7s", 2*time.Second, 7*time.Second, "Forbid"),
		taskSpec{Name: "every3s-runs5s-bg", Schedule: "@every 3s", Period: 3 * time.Second, Sleep: 5 * time.Second,
			Policy: "Forbid", Background: true})
	long := map[string]bool{"every2s-runs7s": true, "every3s-runs5s-bg": true}
	c := newCluster(t, clusterConfig{backend: backend, ttl: ttl, renew: 600 * time.Millisecond, tasks: tasks})
	c.startN(3)
	up := time.Now()
	end := up.Add(runFor(30 * time.Second))
	rng := seeded(t)

	// Every 2-5 s a replica dies, half the time one that runs a long task,
	// and a new one (new instance id) takes its place.
	var kills []time.Time
	midRun := 0
	for {
		next := time.Now().Add(2*time.Second + time.Duration(rng.Int64N(int64(3*time.Second))))
		if next.After(end.Add(-2 * time.Second)) {
			break
		}
		sleepUntil(next)
		victim, holder := c.victim(rng, long)
		if holder {
			midRun++
		}
		kills = append(kills, c.crash(victim))
		c.start()
	}
	sleepUntil(end)
	c.stopAll()

	// A kill loses the ticks the victim had claimed and not yet started, and
	// under Forbid the ticks after them until its lock expires: all within
	// [kill - 1s, kill + ttl + 1s]. The report fails the test for every run
	// of a killed replica seen alive more than orphanSlack after the kill,
	// and for every pair of runs of a Forbid task that overlap.
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second),
		fmt.Sprintf("%d replicas killed with SIGKILL, %d of them while running a long task; misses are ticks the victim had claimed but not started, "+
			"and (Forbid) ticks found busy until its lock expired (ttl %v)", len(kills), midRun, ttl))
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
	killedMidRun := 0
	for _, r := range c.runs() {
		if long[r.Task] && r.End.IsZero() {
			killedMidRun++
		}
	}
	if midRun > 0 && killedMidRun == 0 {
		t.Errorf("%d kills of a replica running a long task, but every long run recorded its end", midRun)
	}
	t.Logf("%d kills (%d mid-run, %d long runs killed), %d misses, all near a kill", len(kills), midRun, killedMidRun, all.Misses)
}

// running returns the live replicas that run one of the given tasks now
// (a run without an end record whose processes the watcher saw in its
// latest pass).
// victim picks a live replica, half the time (when there is one) one that
// runs one of tasks, and says whether it does.
func (c *cluster) victim(rng *rand.Rand, tasks map[string]bool) (r *replica, running bool) {
	live := c.live()
	victim := live[rng.IntN(len(live))]
	holders := c.running(tasks)
	if len(holders) > 0 && rng.IntN(2) == 0 {
		victim = holders[rng.IntN(len(holders))]
	}
	return victim, slices.Contains(holders, victim)
}

func (c *cluster) running(tasks map[string]bool) []*replica {
	runs := c.runs()
	var out []*replica
	for _, r := range c.live() {
		for _, run := range runs {
			if run.Replica == r.name && tasks[run.Task] && run.End.IsZero() && run.Gone.IsZero() {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func TestRollingRestart(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			rollingRestart(t, backend)
		})
	}
}

func rollingRestart(t *testing.T, backend string) {
	tasks := []taskSpec{
		every("quick-1", time.Second, 0, "Forbid"),
		every("quick-2", time.Second, 0, "Forbid"),
		every("quick-3", time.Second, 0, "Allow"),
		every("overlapping", time.Second, 1500*time.Millisecond, "Allow"), // always running somewhere
		every("every2s-runs1s", 2*time.Second, time.Second, "Forbid"),
		cronEvery("cron3s", 3, 0, "Forbid"),
	}
	c := newCluster(t, clusterConfig{backend: backend, ttl: 3 * time.Second, renew: time.Second, shutdownTimeout: 10 * time.Second, tasks: tasks})
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
	// nothing but the tasks' claim records and the store's epoch is left:
	// no lock, no owner index.
	for _, p := range c.keysOf(ids) {
		t.Errorf("after every replica stopped: %s", p)
	}
	c.onlyRecordsLeft()

	runs := c.runs()
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second),
		fmt.Sprintf("%d replicas replaced one at a time (SIGTERM after the replacement started)", len(stopped)))
	exactlyOnce(t, rep)
	checkRuns(t, rep, runs)
	c.checkLogs()
}

// onlyRecordsLeft fails the test for every key of the cluster but the
// tasks' claim records ("state:<task>") and the store's epoch ("epoch",
// and "epoch:<what>" beside it, such as the server that began it); on
// PostgreSQL, for every live lock.
func (c *cluster) onlyRecordsLeft() {
	c.t.Helper()
	if c.table != "" {
		for _, l := range c.pgLocks() {
			c.t.Errorf("after every replica stopped: lock %q of %q is left", l[0], l[1])
		}
		return
	}
	for _, k := range c.keys() {
		if rest := strings.TrimPrefix(k, c.prefix); !strings.HasPrefix(rest, "state:") && rest != "epoch" && !strings.HasPrefix(rest, "epoch:") {
			c.t.Errorf("after every replica stopped: key %q is left", k)
		}
	}
}

// names reports whether a value names one of the instances: a lock's value
// is its owner, "<instance id>/<session>".
func names(ids map[string]bool, v string) bool {
	if ids[v] {
		return true
	}
	i := strings.LastIndexByte(v, '/')
	return i > 0 && ids[v[:i]]
}

// keysOf returns what is wrong in the cluster's keys for the given
// instances: a string (a lock) or a hash field whose value names one of
// them (the id, or an owner "<id>/<session>"), or an owner index
// ("<prefix>owner:<id>/<session>", a sorted set of lock keys) of one of
// them that still names a live lock of that owner.
func (c *cluster) keysOf(ids map[string]bool) []string {
	c.t.Helper()
	if c.table != "" {
		var problems []string
		for _, l := range c.pgLocks() {
			if names(ids, l[1]) {
				problems = append(problems, fmt.Sprintf("lock %q is held by %q, which names a stopped instance", l[0], l[1]))
			}
		}
		return problems
	}
	ctx := context.Background()
	rc := c.redis.Client()
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
			if v, err := rc.Get(ctx, key).Result(); err == nil && names(ids, v) {
				ttl := rc.PTTL(ctx, key).Val()
				problems = append(problems, fmt.Sprintf("key %q holds %q, which names a stopped instance (expires in %v)", key, v, ttl))
			}
		case typ == "hash":
			fields, err := rc.HGetAll(ctx, key).Result()
			if err != nil {
				c.t.Fatal(err)
			}
			for f, v := range fields {
				// run_owner records who ran the last run: history, not a hold.
				if f != "run_owner" && names(ids, v) {
					problems = append(problems, fmt.Sprintf("hash %q field %q holds %q, which names a stopped instance", key, f, v))
				}
			}
		case typ == "zset" && strings.HasPrefix(rest, "owner:") && names(ids, strings.TrimPrefix(rest, "owner:")):
			owner := strings.TrimPrefix(rest, "owner:")
			members, err := rc.ZRange(ctx, key, 0, -1).Result()
			if err != nil {
				c.t.Fatal(err)
			}
			live := 0
			for _, m := range members {
				if v, err := rc.Get(ctx, c.prefix+"lock:"+m).Result(); err == nil && v == owner {
					live++
					problems = append(problems, fmt.Sprintf("owner index %q names lock %q, still held by %s", key, m, owner))
				}
			}
			if live == 0 {
				c.t.Logf("owner index %q of %s is left, with no live lock in it: %v", key, owner, members)
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
	rc := c.redis.Client()
	defer rc.Close()
	keys, err := rc.Keys(ctx, c.prefix+"*").Result()
	if err != nil {
		c.t.Fatal(err)
	}
	return keys
}

// states returns the tasks' claim records ("state:<task>" hashes) by task.
func (c *cluster) states() map[string]map[string]string {
	c.t.Helper()
	ctx := context.Background()
	rc := c.redis.Client()
	defer rc.Close()
	out := map[string]map[string]string{}
	for _, k := range c.keys() {
		if task, ok := strings.CutPrefix(k, c.prefix+"state:"); ok {
			fields, err := rc.HGetAll(ctx, k).Result()
			if err != nil {
				c.t.Fatal(err)
			}
			out[task] = fields
		}
	}
	return out
}

func TestSharedInstanceID(t *testing.T) {
	t.Parallel()
	tasks := []taskSpec{
		every("quick-1", time.Second, 0, "Forbid"),
		every("quick-2", time.Second, 0, "Allow"),
		cronEvery("cron2s", 2, 100*time.Millisecond, "Forbid"),
		// Always running somewhere: whichever replica stops, another one
		// (with the same instance id) is likely to hold this lock.
		{Name: "every2s-runs5s", Schedule: "@every 2s", Period: 2 * time.Second, Sleep: 5 * time.Second,
			Policy: "Forbid", Background: true},
	}
	c := newCluster(t, clusterConfig{ttl: 2 * time.Second, renew: 600 * time.Millisecond, shutdownTimeout: 10 * time.Second, tasks: tasks})
	id := "shared-" + c.name // every replica's BEAT_INSTANCE_ID, as a copied manifest would set it
	c.startN(3, withInstanceID(id))
	up := time.Now()
	end := up.Add(runFor(30 * time.Second))

	// A rolling restart, every replica with the same id: start the new one,
	// SIGTERM the oldest and wait for it to exit 0. A stopping replica must
	// release only its own locks, not those of the others named like it.
	stopped := 0
	for stopped < 3 || time.Now().Add(5*time.Second).Before(end) {
		time.Sleep(1500 * time.Millisecond)
		old := c.live()[0]
		c.start(withInstanceID(id))
		c.stop(old)
		stopped++
	}
	end = later(end, time.Now().Add(3*time.Second))
	sleepUntil(end)
	c.stopAll()
	owners := map[string]string{}
	for _, r := range c.all() {
		if o, dup := owners[r.owner]; dup {
			t.Errorf("replicas %s and %s have the same lock owner %q", o, r.name, r.owner)
		}
		owners[r.owner] = r.name
	}
	c.onlyRecordsLeft()

	// Every tick exactly once (Forbid ticks found busy are skipped, as
	// Forbid asks), and the report fails the test for overlapping runs of
	// the long task: a replica that released another's lock at its
	// shutdown would let a second run start beside the first.
	runs := c.runs()
	rep := c.report(up.Add(2*time.Second), end.Add(-2*time.Second),
		fmt.Sprintf("instance id %q for all %d replicas; %d replaced one at a time (SIGTERM after the replacement started); %s",
			id, len(c.all()), stopped, share(runs)),
		"misses: every2s-runs5s ticks skipped while the previous run holds the lock (by design)")
	exactlyOnce(t, rep)
	checkRuns(t, rep, runs)
	c.checkLogs()
	for _, l := range c.logsOf("lease lost") {
		t.Errorf("lease of %s (token %d) lost: %s", l.Task, l.Token, l.Err)
	}
	if n := len(c.logsOf("lock was no longer ours at release")); n > 0 {
		t.Errorf("%d runs found their lock gone at release: another process released it", n)
	}
}

// pgLocks returns the live locks of the postgres backend's table, as
// {key, owner}.
func (c *cluster) pgLocks() [][2]string {
	c.t.Helper()
	pool := pgtest.Pool(c.t)
	rows, err := pool.Query(context.Background(), fmt.Sprintf(
		"SELECT convert_from(key, 'UTF8'), convert_from(owner, 'UTF8') FROM %s WHERE expires > clock_timestamp()", c.table))
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var l [2]string
		if err := rows.Scan(&l[0], &l[1]); err != nil {
			c.t.Fatal(err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
	return out
}
