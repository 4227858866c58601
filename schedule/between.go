package schedule

import (
	"math"
	"time"
)

// Between returns the latest tick in (from, to] and how many ticks lie in
// (from, to], counting at most limit (count == limit means "limit or more");
// latest is zero when there is none. A limit of zero or less counts nothing
// but still finds the latest tick.
//
// It calls Next at most limit plus about a hundred times, however many ticks
// the range holds, so that a long outage of a frequent task costs no more
// than a short one.
func Between(s Schedule, from, to time.Time, limit int) (latest time.Time, count int) {
	// Monotonic readings would make Sub and the comparisons below disagree
	// with the wall-clock instants that Next works in.
	from, to = from.Round(0), to.Round(0)
	if !from.Before(to) {
		return time.Time{}, 0
	}
	if e, ok := s.(every); ok {
		return e.between(from, to, limit)
	}
	t := from
	for count < limit {
		n := s.Next(t)
		if n.IsZero() || n.After(to) {
			return latest, count
		}
		latest, t = n, n
		count++
	}
	if n := latestIn(s, t, to); !n.IsZero() {
		latest = n
	}
	return latest, count
}

// latestIn returns the latest tick in (lo, hi], or the zero time if there is
// none. It bisects on "is there a tick in (m, hi]", so it needs about 64
// calls of Next however dense the ticks are.
func latestIn(s Schedule, lo, hi time.Time) time.Time {
	if !hasTick(s, lo, hi) {
		return time.Time{}
	}
	// Invariant: a tick in (lo, hi], none in (top, hi].
	top := hi
	for top.Sub(lo) > time.Nanosecond {
		mid := midpoint(lo, top)
		if hasTick(s, mid, hi) {
			lo = mid
		} else {
			top = mid
		}
	}
	return s.Next(lo)
}

func hasTick(s Schedule, after, upTo time.Time) bool {
	n := s.Next(after)
	return !n.IsZero() && !n.After(upTo)
}

// midpoint returns a time halfway between a and b, also when b-a is too
// long for a Duration.
func midpoint(a, b time.Time) time.Time {
	if d := b.Sub(a); d < math.MaxInt64 {
		return a.Add(d / 2)
	}
	return time.Unix(a.Unix()/2+b.Unix()/2, 0)
}
