package scheduler_test

import (
	"bytes"
	"context"
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
	var mu sync.Mutex
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	s := b.start(t, []scheduler.Task{{Name: "t", Schedule: every(t, "@every 1s"), Func: (&recorder{}).fn, StartingDeadline: time.Second}},
		scheduler.WithLogger(log), scheduler.WithClaimBackoff(100*time.Millisecond, 100*time.Millisecond),
		scheduler.WithMaxClockSkew(100*time.Millisecond))
	// Time runs on, in steps, while the claims retry.
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			if b.clock.Timers() > 0 {
				b.clock.Advance(50 * time.Millisecond)
			}
		}
	}()
	for range 3 {
		b.waitFor(t, scheduler.ClaimFailed)
	}
	mu.Lock()
	text := logs.String()
	mu.Unlock()
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

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
