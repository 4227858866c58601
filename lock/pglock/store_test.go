package pglock_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beatlock/beat/internal/pgtest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/pglock"
)

// TestClaimContention: 20 replicas, each with a connection of its own,
// claim the same 50 ticks of one task at once: each tick is claimed exactly
// once (at most once under Forbid, where a replica may find the task busy),
// with tokens rising in tick order.
func TestClaimContention(t *testing.T) {
	const replicas, ticks = 20, 50
	shared := pgtest.Pool(t)
	name := pgtest.Table(t)
	for _, p := range []lock.Policy{lock.Allow, lock.Replace, lock.Forbid} {
		t.Run(p.String(), func(t *testing.T) {
			task := "t-" + p.String()
			setup := pglock.New(shared, pglock.WithTable(name))
			if err := setup.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := pglock.Backdate(ctx, setup, 3*time.Hour); err != nil {
				t.Fatal(err)
			}
			epoch, _, err := setup.Epoch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			base := epoch.Truncate(time.Minute).Add(time.Minute)
			stores := make([]*pglock.Backend, replicas)
			for r := range stores {
				cfg := pgtest.Config(t)
				cfg.MaxConns, cfg.MinConns = 1, 1
				pool, err := pgxpool.NewWithConfig(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pool.Close)
				stores[r] = pglock.New(pool, pglock.WithTable(name))
			}
			var (
				mu      sync.Mutex
				winners = make(map[int][]lock.Lease)
				wg      sync.WaitGroup
				start   = make(chan struct{})
			)
			for r, st := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					owner := fmt.Sprintf("replica-%d", r)
					<-start
					for n := range ticks {
						res, err := st.Claim(ctx, lock.ClaimRequest{Task: task, Tick: base.Add(time.Duration(n) * time.Minute),
							Owner: owner, Session: owner, TTL: time.Hour, Policy: p, MaxSkew: time.Second})
						if err != nil {
							t.Errorf("%s: Claim: %v", owner, err)
							return
						}
						if res.Outcome != lock.Claimed {
							continue
						}
						mu.Lock()
						winners[n] = append(winners[n], res.Lease)
						mu.Unlock()
						if p == lock.Forbid {
							if ok, err := st.ReleaseLease(ctx, res.Lease, &lock.RunRecord{Tick: base, Result: lock.RunSucceeded}); err != nil || !ok {
								t.Errorf("%s: ReleaseLease = %v, %v", owner, ok, err)
							}
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			var last uint64
			for n := range ticks {
				w := winners[n]
				switch {
				case len(w) > 1:
					t.Errorf("tick %d claimed %d times: %+v", n, len(w), w)
				case len(w) == 0 && p != lock.Forbid:
					t.Errorf("tick %d claimed by none", n)
				case len(w) == 1:
					if w[0].Token <= last {
						t.Errorf("tick %d: token %d after %d", n, w[0].Token, last)
					}
					last = w[0].Token
				}
			}
			t.Logf("%d of %d ticks claimed", len(winners), ticks)
		})
	}
}

// TestStoreLoss: a database that lost the last records (restored from a
// backup, a promoted replica, a tasks table made again or emptied) begins a
// new epoch at the next claim: ticks
// from before it are store-lost, Forbid claims of a caller that knew the old
// epoch are busy and guarded for a ttl, and tokens keep rising.
func TestStoreLoss(t *testing.T) {
	pool := pgtest.Pool(t)
	// sql is run with the meta table as %[1]s, the tasks table as %[2]s;
	// then Migrate, where migrate is set.
	for _, loss := range []struct {
		name, sql string
		migrate   bool
	}{
		{name: "meta row deleted", sql: `DELETE FROM %[1]s`},
		{name: "meta table truncated", sql: `TRUNCATE %[1]s`},
		{name: "restored into another table", sql: `UPDATE %[1]s SET table_oid = 0`},
		{name: "restored into the same table (TRUNCATE, then its rows)", sql: `CREATE TEMP TABLE saved AS SELECT * FROM %[1]s; TRUNCATE %[1]s; INSERT INTO %[1]s SELECT * FROM saved; DROP TABLE saved`},
		{name: "another cluster", sql: `UPDATE %[1]s SET system_id = '1'`},
		{name: "another timeline", sql: `UPDATE %[1]s SET timeline = 'FFFFFFFF'`},
		{name: "tasks table truncated", sql: `TRUNCATE %[2]s`},
		{name: "tasks table dropped, then made again by beat migrate", sql: `DROP TABLE %[2]s`, migrate: true},
	} {
		t.Run(loss.name, func(t *testing.T) {
			b := newBackend(t, pool)
			_, tasks, meta := pglock.Tables(b)
			old, now, err := b.Epoch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			req := lock.ClaimRequest{Task: "t", Tick: now.Add(-time.Second), Owner: "a", TTL: time.Minute,
				Policy: lock.Allow, MaxSkew: time.Second, KnownEpoch: old}
			before, err := b.Claim(ctx, req)
			if err != nil || before.Outcome != lock.Claimed || !before.Epoch.Equal(old) {
				t.Fatalf("Claim = %+v, %v; want claimed at epoch %v", before, err, old)
			}
			if _, err := pool.Exec(ctx, fmt.Sprintf(loss.sql, meta, tasks)); err != nil {
				t.Fatal(err)
			}
			if loss.migrate {
				if err := b.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if strings.HasPrefix(loss.sql, "UPDATE") {
				// Only a claim notices, since only a claim knows whether its
				// caller saw the epoch before (as redislock).
				if e, _, err := b.Epoch(ctx); err != nil || !e.Equal(old) {
					t.Errorf("Epoch = %v, %v; want it kept at %v until a claim", e, err, old)
				}
			}
			req.Owner = "b" // a replica whose claim of the same tick failed, retrying
			again, err := b.Claim(ctx, req)
			if err != nil || again.Outcome != lock.StoreLost {
				t.Fatalf("Claim of the tick claimed before the loss = %+v, %v; want store-lost", again, err)
			}
			if !again.Epoch.After(req.Tick) || !again.Epoch.After(old) {
				t.Errorf("epoch after the loss = %v; want a new one after the tick %v", again.Epoch, req.Tick)
			}
			if e, _, err := b.Epoch(ctx); err != nil || !e.Equal(again.Epoch) {
				t.Fatalf("Epoch = %v, %v; want %v", e, err, again.Epoch)
			}
			forbid := req
			forbid.Task, forbid.Policy, forbid.Tick = "f", lock.Forbid, again.Epoch
			if res, err := b.Claim(ctx, forbid); err != nil || res.Outcome != lock.Busy || !res.Guarded {
				t.Errorf("Forbid claim within a ttl of the loss = %+v, %v; want busy, guarded", res, err)
			}
			req.Tick = again.Epoch
			after, err := b.Claim(ctx, req)
			if err != nil || after.Outcome != lock.Claimed || !after.Epoch.Equal(again.Epoch) {
				t.Fatalf("Allow claim at the new epoch = %+v, %v; want claimed", after, err)
			}
			if after.Lease.Token <= before.Lease.Token {
				t.Errorf("token after the loss = %d; want above %d", after.Lease.Token, before.Lease.Token)
			}
		})
	}
	t.Run("a new store is not guarded", func(t *testing.T) {
		b := pglock.New(pool, pglock.WithTable(pgtest.Table(t)))
		if err := b.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		epoch, _, err := b.Epoch(ctx) // the first call begins the epoch
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: epoch, Owner: "a", TTL: time.Minute, MaxSkew: time.Second})
		if err != nil || res.Outcome != lock.Claimed {
			t.Fatalf("first Forbid claim on a new store = %+v, %v; want claimed", res, err)
		}
	})
	t.Run("the guard ends a ttl after the new epoch", func(t *testing.T) {
		b := newBackend(t, pool)
		_, _, meta := pglock.Tables(b)
		old, _, err := b.Epoch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `DELETE FROM `+meta); err != nil {
			t.Fatal(err)
		}
		const ttl = 300 * time.Millisecond
		claim := func(task string) lock.ClaimResult {
			t.Helper()
			epoch, now, err := b.Epoch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tick := now
			if tick.Before(epoch) {
				tick = epoch
			}
			res, err := b.Claim(ctx, lock.ClaimRequest{Task: task, Tick: tick, Owner: "a", TTL: ttl, MaxSkew: time.Second, KnownEpoch: old})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		if res := claim("t1"); res.Outcome != lock.Busy || !res.Guarded {
			t.Fatalf("Forbid claim after the loss = %+v; want busy, guarded", res)
		}
		time.Sleep(ttl + 50*time.Millisecond)
		if res := claim("t2"); res.Outcome != lock.Claimed {
			t.Fatalf("Forbid claim a ttl after the loss = %+v; want claimed", res)
		}
	})
}

// TestIdentityRecorded: the meta row holds what identifies the database's
// history: its system identifier, its timeline, the meta table's oid and
// the file nodes of the meta and tasks tables.
func TestIdentityRecorded(t *testing.T) {
	pool := pgtest.Pool(t)
	b := newBackend(t, pool)
	_, tasks, meta := pglock.Tables(b)
	var system, timeline, wantSystem, wantTimeline string
	var sameTable bool
	nodesSQL := `SELECT table_node = pg_relation_filenode(tableoid) AND tasks_node = pg_relation_filenode('` + tasks + `'::regclass) FROM ` + meta
	nodes := func() bool {
		t.Helper()
		var same bool
		if err := pool.QueryRow(ctx, nodesSQL).Scan(&same); err != nil {
			t.Fatal(err)
		}
		return same
	}
	if !nodes() {
		t.Errorf("the meta row's table_node and tasks_node are not the tables' file nodes")
	}
	if err := pool.QueryRow(ctx, `SELECT system_id, timeline, table_oid = tableoid FROM `+meta).Scan(&system, &timeline, &sameTable); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT system_identifier::text FROM pg_control_system()`).Scan(&wantSystem); err != nil {
		t.Skipf("this role may not read pg_control_system(): %v", err)
	}
	if err := pool.QueryRow(ctx, `SELECT lpad(upper(to_hex(timeline_id)), 8, '0') FROM pg_control_checkpoint()`).Scan(&wantTimeline); err != nil {
		t.Skipf("this role may not read pg_control_checkpoint(): %v", err)
	}
	if system != wantSystem || timeline != wantTimeline || !sameTable {
		t.Errorf("meta identity = %q, %q, same table %v; want %q, %q, true", system, timeline, sameTable, wantSystem, wantTimeline)
	}
	// An identity recorded empty (a role that could not read it, or a beat
	// from before the file nodes were recorded) is filled in, without a new
	// epoch.
	old, _, _ := b.Epoch(ctx)
	if _, err := pool.Exec(ctx, `UPDATE `+meta+` SET system_id = '', timeline = '', table_node = 0, tasks_node = 0`); err != nil {
		t.Fatal(err)
	}
	_, now, _ := b.Epoch(ctx)
	res, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: now, Owner: "a", TTL: time.Minute, MaxSkew: time.Second, KnownEpoch: old})
	if err != nil || res.Outcome != lock.Claimed || !res.Epoch.Equal(old) {
		t.Fatalf("Claim = %+v, %v; want claimed in the same epoch %v", res, err, old)
	}
	if err := pool.QueryRow(ctx, `SELECT system_id, timeline FROM `+meta).Scan(&system, &timeline); err != nil {
		t.Fatal(err)
	}
	if system != wantSystem || timeline != wantTimeline {
		t.Errorf("identity after the claim = %q, %q; want %q, %q", system, timeline, wantSystem, wantTimeline)
	}
	if !nodes() {
		t.Errorf("the file nodes were not filled in by the claim")
	}
}

// TestFutureRecordDisregarded: a claim record ahead of the database's clock
// (its clock stepped back, or an older beat wrote it) does not make correct
// replicas skip; the claim falls back to the tick decided before it.
func TestFutureRecordDisregarded(t *testing.T) {
	pool := pgtest.Pool(t)
	b := newBackend(t, pool)
	_, tasks, _ := pglock.Tables(b)
	_, now, err := b.Epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	past, future := now.Add(-time.Minute).Truncate(time.Millisecond), now.Add(30*time.Minute).Truncate(time.Millisecond)
	if _, err := pool.Exec(ctx, `INSERT INTO `+tasks+` (task, last_claimed, prev, fence, session, lock_key) VALUES ($1, $2, $3, 7, '', $1)`,
		[]byte("t"), future, past); err != nil {
		t.Fatal(err)
	}
	req := lock.ClaimRequest{Task: "t", Tick: past, Owner: "a", TTL: time.Minute, Policy: lock.Allow, MaxSkew: 2 * time.Second}
	if res, err := b.Claim(ctx, req); err != nil || res.Outcome != lock.AlreadyClaimed || !res.FutureRecord.Equal(future) {
		t.Fatalf("Claim of the tick before the record = %+v, %v; want already-claimed, future record %v", res, err, future)
	}
	req.Tick = now.Add(-time.Second)
	res, err := b.Claim(ctx, req)
	if err != nil || res.Outcome != lock.Claimed || !res.Previous.Equal(past) || !res.FutureRecord.Equal(future) {
		t.Fatalf("Claim = %+v, %v; want claimed after %v, future record %v", res, err, past, future)
	}
	if res.Lease.Token <= 7 {
		t.Errorf("token %d; want above the record's 7", res.Lease.Token)
	}
	req.Tick = req.Tick.Add(time.Millisecond)
	if next, err := b.Claim(ctx, req); err != nil || next.Outcome != lock.Claimed || !next.FutureRecord.IsZero() {
		t.Fatalf("Claim after recovery = %+v, %v; want claimed, no future record", next, err)
	}
}

// TestExpiredRowsAreSwept: lock rows nobody releases (a replica killed
// during runs under Allow, a TryAcquire never released) are deleted by
// later claims, a few at a time, so the table does not grow without bound.
func TestExpiredRowsAreSwept(t *testing.T) {
	pool := pgtest.Pool(t)
	b := newBackend(t, pool)
	locks, _, _ := pglock.Tables(b)
	for i := range 20 {
		if ok, err := b.TryAcquire(ctx, fmt.Sprint("abandoned-", i), "gone", time.Millisecond); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	epoch, _, _ := b.Epoch(ctx)
	for n := range 3 {
		res, err := b.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: epoch.Add(time.Duration(n) * time.Minute), Owner: "a", TTL: time.Hour, Policy: lock.Allow})
		if err != nil || res.Outcome != lock.Claimed {
			t.Fatalf("Claim = %+v, %v", res, err)
		}
	}
	var expired, live int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE expires <= clock_timestamp()), count(*) FILTER (WHERE expires > clock_timestamp()) FROM `+locks).Scan(&expired, &live); err != nil {
		t.Fatal(err)
	}
	if expired != 0 || live != 3 {
		t.Errorf("%d expired and %d live rows after 3 claims; want none expired (each claim sweeps up to 8), 3 live", expired, live)
	}
}

// TestReleaseAllUsesOwnerIndex: ReleaseAll reads the owner's rows through
// the index on owner, not the whole table.
func TestReleaseAllUsesOwnerIndex(t *testing.T) {
	pool := pgtest.Pool(t)
	b := newBackend(t, pool)
	locks, _, _ := pglock.Tables(b)
	if _, err := pool.Exec(ctx, `INSERT INTO `+locks+` (key, owner, expires)
		SELECT convert_to('other-' || i, 'UTF8'), convert_to('owner-' || (i % 1000), 'UTF8'), clock_timestamp() + interval '1 hour'
		FROM generate_series(1, 20000) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE `+locks); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `EXPLAIN `+pglock.ReleaseAllSQL(b), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	idx := strings.Trim(locks, `"`) + "_owner"
	if p := strings.Join(plan, "\n"); !strings.Contains(p, idx) || strings.Contains(p, "Seq Scan on "+strings.Trim(locks, `"`)) {
		t.Errorf("ReleaseAll's plan does not use the index %s:\n%s", idx, p)
	}
	for _, k := range []string{"k1", "k2", "k3"} {
		if ok, err := b.TryAcquire(ctx, k, "a", time.Hour); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if n, err := b.ReleaseAll(ctx, "a"); n != 3 || err != nil {
		t.Fatalf("ReleaseAll = %d, %v; want 3", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+locks).Scan(&left); err != nil || left != 20000 {
		t.Errorf("%d rows left, %v; want the 20000 of other owners", left, err)
	}
}

// TestUnreadableRecord: a task's row written by hand with values no call
// writes is listed with Err, and does not hide the other records.
func TestUnreadableRecord(t *testing.T) {
	pool := pgtest.Pool(t)
	b := newBackend(t, pool)
	_, tasks, _ := pglock.Tables(b)
	epoch, _, _ := b.Epoch(ctx)
	if res, err := b.Claim(ctx, lock.ClaimRequest{Task: "good", Tick: epoch, Owner: "a", TTL: time.Minute}); err != nil || res.Outcome != lock.Claimed {
		t.Fatal(res, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+tasks+` (task, fence, run_token, run_ms, run_result) VALUES ($1, 1, 1, -5, 'succeeded')`, []byte("bad")); err != nil {
		t.Fatal(err)
	}
	recs, _, err := b.Tasks(ctx)
	if err != nil || len(recs) != 2 {
		t.Fatalf("Tasks = %+v, %v; want both records", recs, err)
	}
	if recs[0].Task != "bad" || recs[0].Err == nil || !strings.Contains(recs[0].Err.Error(), "run_ms") {
		t.Errorf("bad record = %+v; want Err naming run_ms", recs[0])
	}
	if recs[1].Task != "good" || recs[1].Err != nil || recs[1].Holder != "a" {
		t.Errorf("good record = %+v; want it read", recs[1])
	}
	if err := b.Forget(ctx, "bad", 0); err != nil {
		t.Errorf("Forget of the bad record: %v", err)
	}
}
