// Package clocktest provides a clock that tests move by hand.
package clocktest

import (
	"sync"
	"time"

	"github.com/beatlock/beat/clock"
)

var _ clock.Clock = (*Fake)(nil)

// Fake is a clock.Clock that stands still until Advance or Set moves it.
// Timers fire (without blocking) when the clock passes their deadline.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	waiters []chan struct{}
}

// New returns a Fake reading t.
func New(t time.Time) *Fake { return &Fake{now: t} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the clock forward by d and fires the timers that came due.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t (forward or back) and fires the timers due by then.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
	kept := f.timers[:0]
	for _, tm := range f.timers {
		if !tm.at.After(t) {
			tm.c <- t // buffered, capacity 1, sent once
			continue
		}
		kept = append(kept, tm)
	}
	f.timers = kept
}

// NewTimer returns a timer that fires when the clock reaches now+d.
func (f *Fake) NewTimer(d time.Duration) clock.Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	tm := &fakeTimer{f: f, at: f.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		tm.c <- f.now
	} else {
		f.timers = append(f.timers, tm)
	}
	for _, w := range f.waiters {
		close(w)
	}
	f.waiters = nil
	return tm
}

// Timers reports how many timers are waiting to fire.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// TimerCreated returns a channel closed the next time a timer is made, so a
// test can wait for the code under test to go to sleep instead of sleeping.
func (f *Fake) TimerCreated() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := make(chan struct{})
	f.waiters = append(f.waiters, w)
	return w
}

// BlockUntil waits until at least n timers are waiting to fire, or gives up
// after timeout and reports false. A test calls it before Advance, so that
// the code under test has computed its deadlines from the current reading
// and the clock does not move under it between Now and NewTimer.
func (f *Fake) BlockUntil(n int, timeout time.Duration) bool {
	give := time.After(timeout)
	for {
		created := f.TimerCreated()
		if f.Timers() >= n {
			return true
		}
		select {
		case <-created:
		case <-give:
			return f.Timers() >= n
		}
	}
}

type fakeTimer struct {
	f  *Fake
	at time.Time
	c  chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	for i, tm := range t.f.timers {
		if tm == t {
			t.f.timers = append(t.f.timers[:i], t.f.timers[i+1:]...)
			return true
		}
	}
	return false
}
