package redislock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/lock"
)

// tasksBatch is how many state hashes one run of the tasks script reads.
const tasksBatch = 500

// Tasks lists the state hashes with SCAN, on the node that holds the
// prefix's slot, and reads them with a script, a batch at a time: each
// batch is read atomically, the whole list is not.
func (b *Backend) Tasks(ctx context.Context) ([]lock.TaskRecord, time.Time, error) {
	if b.err != nil {
		return nil, time.Time{}, b.err
	}
	statePrefix := b.stateKey("")
	keys, err := b.scan(ctx, globEscape(statePrefix)+"*")
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("redislock: tasks: %w", err)
	}
	var recs []lock.TaskRecord
	var now time.Time
	for i := 0; i == 0 || i < len(keys); i += tasksBatch {
		batch := keys[i:min(i+tasksBatch, len(keys))]
		reply, err := tasksScript.Run(ctx, b.client, batch, statePrefix, b.lockKey(""), b.fenceKey("")).Slice()
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("redislock: tasks: %w", err)
		}
		if now, err = parseTasks(reply, statePrefix, &recs); err != nil {
			return nil, time.Time{}, fmt.Errorf("redislock: tasks: %w", err)
		}
	}
	slices.SortFunc(recs, func(a, b lock.TaskRecord) int { return cmp.Compare(a.Task, b.Task) })
	return recs, now, nil
}

// scan returns the keys that match pattern, each once, sorted. On Redis
// Cluster it scans the master of the prefix's slot, where all of the
// Backend's keys live; on a Ring every shard.
func (b *Backend) scan(ctx context.Context, pattern string) ([]string, error) {
	var mu sync.Mutex
	seen := make(map[string]struct{})
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			page, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			for _, k := range page {
				seen[k] = struct{}{}
			}
			mu.Unlock()
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	var err error
	switch c := b.client.(type) {
	case *redis.ClusterClient:
		var node *redis.Client
		if node, err = c.MasterForKey(ctx, b.stateKey("")); err == nil {
			err = scan(ctx, node)
		}
	case *redis.Ring:
		err = c.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error { return scan(ctx, node) })
	default:
		err = scan(ctx, b.client)
	}
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// globEscape escapes the characters that SCAN MATCH reads as a pattern.
func globEscape(s string) string {
	var sb strings.Builder
	for i := range len(s) {
		if strings.IndexByte(`*?[]\`, s[i]) >= 0 {
			sb.WriteByte('\\')
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// parseTasks reads the tasks script's reply into recs and returns the
// server's clock.
func parseTasks(reply []any, statePrefix string, recs *[]lock.TaskRecord) (time.Time, error) {
	if len(reply) == 0 {
		return time.Time{}, errors.New("empty reply from the store")
	}
	now, ok := reply[0].(int64)
	if !ok || now <= 0 {
		return time.Time{}, fmt.Errorf("unexpected clock %v from the store", reply[0])
	}
	for _, e := range reply[1:] {
		entry, _ := e.([]any)
		key, _ := str(entry, 0)
		kind, _ := str(entry, 1)
		switch {
		case kind == "error" && len(entry) == 3 && strings.HasPrefix(key, statePrefix):
			msg, _ := str(entry, 2)
			*recs = append(*recs, lock.TaskRecord{Task: key[len(statePrefix):], Err: errors.New(msg)})
			continue
		case kind == "type" && len(entry) == 3 && strings.HasPrefix(key, statePrefix):
			t, _ := str(entry, 2)
			*recs = append(*recs, lock.TaskRecord{Task: key[len(statePrefix):],
				Err: fmt.Errorf("key %q is a %s, not the hash of a task's record", key, t)})
			continue
		case kind != "hash" || len(entry) != 5 || !strings.HasPrefix(key, statePrefix):
			return time.Time{}, fmt.Errorf("unexpected entry %v from the store", e)
		}
		fields, ok := entry[2].([]any)
		if !ok || len(fields)%2 != 0 {
			return time.Time{}, fmt.Errorf("key %q: unexpected fields %v from the store", key, entry[2])
		}
		h := make(map[string]string, len(fields)/2)
		for i := 0; i < len(fields); i += 2 {
			f, ok1 := fields[i].(string)
			v, ok2 := fields[i+1].(string)
			if !ok1 || !ok2 {
				return time.Time{}, fmt.Errorf("key %q: unexpected fields %v from the store", key, fields)
			}
			h[f] = v
		}
		holder, ok1 := entry[3].(string)
		left, ok2 := entry[4].(int64)
		if !ok1 || !ok2 {
			return time.Time{}, fmt.Errorf("key %q: unexpected holder %v, %v from the store", key, entry[3], entry[4])
		}
		rec, listed, err := parseTask(key, h)
		if err != nil {
			// One record written by hand must not hide the others, nor keep
			// an operator from repairing it.
			*recs = append(*recs, lock.TaskRecord{Task: key[len(statePrefix):], Err: err})
			continue
		}
		if !listed {
			continue // only the fence of a forgotten task
		}
		rec.Task = key[len(statePrefix):]
		if holder != "" {
			rec.Holder, rec.LockLeft = holder, time.Duration(max(left, 0))*time.Millisecond
		}
		*recs = append(*recs, rec)
	}
	return time.UnixMilli(now).UTC(), nil
}

func str(entry []any, i int) (string, bool) {
	if i >= len(entry) {
		return "", false
	}
	s, ok := entry[i].(string)
	return s, ok
}

// parseTask reads a state hash; listed is false when it holds neither a
// claim, a skipped tick nor a run. Errors name the key and the field.
func parseTask(key string, h map[string]string) (rec lock.TaskRecord, listed bool, err error) {
	field := func(name string) (int64, error) {
		v := h[name]
		if v == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("key %q field %q: %q is not an integer", key, name, v)
		}
		return n, nil
	}
	token := func(name string) (uint64, error) {
		v := h[name]
		if v == "" {
			return 0, nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("key %q field %q: %q is not a token", key, name, v)
		}
		return n, nil
	}
	var tick, busy, runTick, runMS, runEnd int64
	var fence, runToken uint64
	for _, f := range []struct {
		name string
		int  *int64
		uint *uint64
	}{
		{name: "tick", int: &tick}, {name: "busy", int: &busy}, {name: "fence", uint: &fence},
		{name: "run_tick", int: &runTick}, {name: "run_token", uint: &runToken},
		{name: "run_ms", int: &runMS}, {name: "run_end", int: &runEnd},
	} {
		if f.int != nil {
			*f.int, err = field(f.name)
		} else {
			*f.uint, err = token(f.name)
		}
		if err != nil {
			return rec, false, err
		}
	}
	if runMS < 0 {
		return rec, false, fmt.Errorf("key %q field %q: %d is negative", key, "run_ms", runMS)
	}
	rec.LastClaimed, rec.LastSkipped = msTime(tick), msTime(busy)
	if tick != 0 {
		rec.Token = fence
	}
	if runToken != 0 {
		rec.LastRun = &lock.RunRecord{
			Tick:     msTime(runTick),
			Token:    runToken,
			Owner:    h["run_owner"],
			Result:   h["run_result"],
			Duration: time.Duration(runMS) * time.Millisecond,
			Error:    h["run_err"],
			Ended:    msTime(runEnd),
		}
	}
	return rec, tick != 0 || busy != 0 || runToken != 0, nil
}

// msTime is the inverse of time.Time.UnixMilli, in UTC; 0 is the zero time.
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func (b *Backend) ForceRelease(ctx context.Context, task string, hold time.Duration) (bool, error) {
	if err := lock.CheckRevoke(task, hold); err != nil {
		return false, err
	}
	return b.runBool(ctx, "force-release", task, forceReleaseScript, []string{b.stateKey(task)},
		task, b.lockKey(""), b.fenceKey(""), b.ownerKey(""), ms(hold), lock.RevokedOwner)
}

func (b *Backend) Forget(ctx context.Context, task string, minAge time.Duration) error {
	if err := lock.CheckTask(task); err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	reply, err := forgetScript.Run(ctx, b.client, []string{b.stateKey(task)}, task, b.lockKey(""), b.fenceKey(""), ms(max(minAge, 0))).Slice()
	if err != nil {
		return fmt.Errorf("redislock: forget %q: %w", task, err)
	}
	switch len(reply) {
	case 0:
		return nil
	case 2:
		what, ok1 := reply[0].(string)
		n, ok2 := reply[1].(int64)
		d := time.Duration(n) * time.Millisecond
		switch {
		case ok1 && ok2 && what == "recent":
			return fmt.Errorf("redislock: forget %q: %w: %v ago, less than %v", task, lock.ErrRecent, d.Round(time.Second), minAge)
		case ok1 && ok2:
			return fmt.Errorf("redislock: forget %q: %w (by %q, for %v more)", task, lock.ErrHeld, what, d)
		}
	}
	return fmt.Errorf("redislock: forget %q: unexpected reply %v from the store", task, reply)
}
