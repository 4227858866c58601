package schedule

import "time"

// MinInterval returns the shortest time between two consecutive ticks of s
// among the first n+1 ticks after from: exact for @every, and for a cron
// spec as exact as n ticks show (a spec's pattern of gaps repeats within a
// day, a month or a year). It returns 0 when s has fewer than two ticks
// after from.
func MinInterval(s Schedule, from time.Time, n int) time.Duration {
	if e, ok := s.(every); ok {
		return time.Duration(e.ms) * time.Millisecond
	}
	var gap time.Duration
	prev := s.Next(from)
	for range n {
		if prev.IsZero() {
			break
		}
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		if d := next.Sub(prev); gap == 0 || d < gap {
			gap = d
		}
		prev = next
	}
	return gap
}
