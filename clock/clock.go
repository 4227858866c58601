// Package clock lets the scheduler and the in-memory lock store read time
// through an interface, so tests can drive it by hand instead of sleeping.
package clock

import "time"

// Clock tells the time and makes timers. Real is the wall clock; tests use
// clocktest.Fake.
type Clock interface {
	Now() time.Time
	// NewTimer fires once, d after now, as time.NewTimer does.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer that the scheduler uses.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

// Real is the system clock. Its times carry a monotonic reading, so
// durations between them are immune to wall-clock steps.
type Real struct{}

func (Real) Now() time.Time { return time.Now() }

func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Offset is a clock running a fixed amount ahead of (or, negative, behind)
// another: a replica whose wall clock disagrees with its peers'.
type Offset struct {
	Base Clock
	By   time.Duration
}

func (o Offset) Now() time.Time { return o.Base.Now().Add(o.By) }

func (o Offset) NewTimer(d time.Duration) Timer { return o.Base.NewTimer(d) }
