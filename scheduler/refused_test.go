package scheduler_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/scheduler"
)

// refuser is a store that refuses every claim, as one given a wrong
// password does.
type refuser struct{ lock.Store }

func (refuser) Claim(context.Context, lock.ClaimRequest) (lock.ClaimResult, error) {
	return lock.ClaimResult{}, fmt.Errorf("%w: the server refused the password: WRONGPASS", lock.ErrRefused)
}

// A store that refuses this replica is said once (a minute), not at every
// claim and every tick; the ticks are still counted as claim failed.
func TestRefusedStoreSaidOnce(t *testing.T) {
	b := setup(t)
	b.store = refuser{b.store}
	log, logged := captureLog(slog.LevelInfo)
	s := b.start(t, []scheduler.Task{{Name: "t", Schedule: every(t, "@every 1s"), Func: (&recorder{}).fn, StartingDeadline: time.Second}},
		scheduler.WithLogger(log), scheduler.WithClaimBackoff(100*time.Millisecond, 100*time.Millisecond),
		scheduler.WithMaxClockSkew(100*time.Millisecond))
	// Time runs on, in steps, while the claims retry.
	b.runClock(t, 50*time.Millisecond, func() bool { return b.clock.Timers() > 0 })
	for range 3 {
		b.waitFor(t, scheduler.ClaimFailed)
	}
	text := logged()
	if n := strings.Count(text, "the lock store refuses this replica"); n != 1 {
		t.Errorf("said %d times that the store refuses; want once:\n%s", n, text)
	}
	for _, noisy := range []string{"claim failed; retrying", "tick skipped: the claim failed"} {
		if strings.Contains(text, noisy) {
			t.Errorf("logged %q at info or above for a refusal:\n%s", noisy, text)
		}
	}
	if st := s.Stats(); st.ClaimFailed < 3 {
		t.Errorf("ClaimFailed = %d; want every tick counted", st.ClaimFailed)
	}
}

// captureLog returns a text logger at level, and what it logged so far.
func captureLog(level slog.Level) (*slog.Logger, func() string) {
	var mu sync.Mutex
	var logs bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), func() string {
		mu.Lock()
		defer mu.Unlock()
		return logs.String()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// unconfirmed grants the first claim in the store, as a master would, then
// says the replicas did not confirm it; meanwhile another replica claims
// the next tick, so the first one is history when the claim is retried.
type unconfirmed struct {
	lock.Store
	advance func(time.Duration) // the clock, moved on to the next tick
	once    sync.Once
}

func (u *unconfirmed) Claim(ctx context.Context, r lock.ClaimRequest) (lock.ClaimResult, error) {
	var err error
	u.once.Do(func() {
		if _, err = u.Store.Claim(ctx, r); err != nil {
			return
		}
		u.advance(time.Second)
		next := r
		next.Tick, next.Owner, next.Session, next.NotAfter = r.Tick.Add(time.Second), "other/1", "", time.Time{}
		if _, err = u.Store.Claim(ctx, next); err != nil {
			return
		}
		err = fmt.Errorf("%w: 0 of 1 replicas acknowledged it", lock.ErrNotReplicated)
	})
	if err != nil {
		return lock.ClaimResult{}, err
	}
	return u.Store.Claim(ctx, r)
}

// A claim the replicas never confirmed ran nowhere: when its retry finds
// the tick history, it is reported as claim failed, not as claimed
// elsewhere.
func TestUnconfirmedClaimIsNotClaimedElsewhere(t *testing.T) {
	b := setup(t)
	b.clock.Advance(time.Second)
	b.store = &unconfirmed{Store: b.store, advance: b.clock.Advance}
	b.start(t, []scheduler.Task{{Name: "t", Schedule: every(t, "@every 1s"), Func: (&recorder{}).fn, StartingDeadline: time.Second,
		Policy: lock.Allow}}, scheduler.WithClaimBackoff(10*time.Millisecond, 10*time.Millisecond))
	for b.clock.Timers() < 2 {
		time.Sleep(time.Millisecond)
	}
	b.clock.Advance(10 * time.Millisecond)
	ev := b.waitFor(t, scheduler.ClaimFailed)
	if !ev.Tick.Equal(t0.Add(time.Second)) || !errors.Is(ev.Err, lock.ErrNotReplicated) {
		t.Errorf("claim-failed for %v (err %v); want the unconfirmed claim of %v", ev.Tick, ev.Err, t0.Add(time.Second))
	}
}
