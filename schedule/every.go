package schedule

import (
	"fmt"
	"math"
	"time"
)

// every ticks at the multiples of a period since the Unix epoch.
type every struct {
	ms  int64 // the period in milliseconds
	loc *time.Location
}

func parseEvery(text string, loc *time.Location) (every, error) {
	d, err := time.ParseDuration(text)
	if err != nil {
		return every{}, fmt.Errorf(`invalid duration %q: use a number with a unit, like "30s", "1m30s" or "2h"`, text)
	}
	if d < time.Second {
		return every{}, fmt.Errorf("interval %v is shorter than the minimum of 1s", d)
	}
	if d%time.Millisecond != 0 {
		return every{}, fmt.Errorf("interval %v is not a whole number of milliseconds", d)
	}
	return every{ms: d.Milliseconds(), loc: loc}, nil
}

func (e every) Next(t time.Time) time.Time {
	k, ok := e.ticksUpTo(t)
	if !ok || k >= math.MaxInt64/e.ms {
		return time.Time{}
	}
	return time.UnixMilli((k + 1) * e.ms).In(e.loc)
}

// ticksUpTo returns k such that the ticks at or before t are the multiples
// k, k-1, ... of the period. ok is false when t is too far from the epoch
// to count in milliseconds.
func (e every) ticksUpTo(t time.Time) (k int64, ok bool) {
	if sec := t.Unix(); sec > math.MaxInt64/1000-1 || sec < math.MinInt64/1000+1 {
		return 0, false
	}
	ms := t.UnixMilli() // rounds down, also before the epoch
	k = ms / e.ms
	if ms%e.ms < 0 {
		k--
	}
	return k, true
}

func (e every) between(from, to time.Time, limit int) (time.Time, int) {
	lo, ok1 := e.ticksUpTo(from)
	hi, ok2 := e.ticksUpTo(to)
	if !ok1 || !ok2 || hi <= lo {
		return time.Time{}, 0
	}
	return time.UnixMilli(hi * e.ms).In(e.loc), int(min(hi-lo, int64(max(limit, 0))))
}
