package schedule

import (
	"errors"
	"time"

	"github.com/robfig/cron/v3"
)

// cronSchedule ticks when the wall clock of loc matches a cron spec, with the
// DST rules of the package documentation.
type cronSchedule struct {
	// wall matches wall-clock times written as UTC times. Evaluating the spec
	// in UTC keeps robfig's search free of offset changes, which this type
	// handles itself.
	wall *cron.SpecSchedule
	loc  *time.Location
	// fixedHour is set when the hour field does not match every hour; such a
	// spec ticks once per wall-clock time (see the package documentation).
	fixedHour bool
}

const (
	starBit  = 1 << 63 // robfig marks a field written as "*" with this bit
	allHours = 1<<24 - 1
	// maxPeriods bounds the walk over offset periods in Next. A zone has at
	// most a few offset changes a year, and robfig looks five years ahead.
	maxPeriods = 1000
)

func newCron(p cron.Parser, spec string, loc *time.Location) (*cronSchedule, error) {
	parsed, err := p.Parse(spec)
	if err != nil {
		return nil, err
	}
	wall, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, errors.New("not a cron spec") // only @every yields another type, and it never gets here
	}
	wall.Location = time.UTC
	for i, bits := range []uint64{wall.Second, wall.Minute, wall.Hour, wall.Dom, wall.Month, wall.Dow} {
		if bits&^starBit == 0 {
			// A field like "," parses without error but matches nothing.
			return nil, errors.New(fields[i].name + " field matches nothing (allowed: " + fields[i].allowed + ")")
		}
	}
	s := &cronSchedule{wall: wall, loc: loc, fixedHour: wall.Hour&allHours != allHours}
	if s.nextWall(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, errors.New("no date matches the day-of-month, month and day-of-week fields together, so it would never run")
	}
	return s, nil
}

// Next works through the periods of constant UTC offset between the zone's
// transitions. Within one period wall clock and instant correspond one to
// one, so a match found on the wall clock is shifted back by the offset;
// the edges of the periods are where the DST rules apply.
func (s *cronSchedule) Next(t time.Time) time.Time {
	// Ticks are whole seconds, so p is the earliest candidate.
	p := t.Truncate(time.Second).Add(time.Second)
	for range maxPeriods {
		p = p.In(s.loc)
		start, end := p.ZoneBounds()
		off := offset(p)
		prev := off
		if !start.IsZero() {
			prev = offset(start.Add(-time.Nanosecond))
		}
		if s.fixedHour && p.Equal(start) && prev < off {
			// Wall-clock times in [start+prev, start+off) were skipped;
			// a match among them is run as soon as the jump is over.
			if m := s.nextWall(wallClock(start, prev).Add(-time.Nanosecond)); !m.IsZero() && m.Before(wallClock(start, off)) {
				return p
			}
		}
		m := s.nextWall(wallClock(p, off).Add(-time.Nanosecond))
		if m.IsZero() {
			return time.Time{}
		}
		tick := m.Add(-off)
		if !end.IsZero() && !tick.Before(end) {
			p = end
			continue
		}
		if s.fixedHour && prev > off && m.Before(wallClock(start, prev)) {
			// The clocks fell back at start and this wall-clock time came
			// already, in the previous period: resume where the repetition ends.
			p = start.Add(prev - off)
			continue
		}
		return tick.In(s.loc)
	}
	return time.Time{}
}

// nextWall returns the first wall-clock match strictly after w.
func (s *cronSchedule) nextWall(w time.Time) time.Time {
	// robfig gives up after five years, but February 29 can be eight years
	// away (2096 to 2104).
	for range 3 {
		if m := s.wall.Next(w); !m.IsZero() {
			return m
		}
		w = time.Date(w.Year()+5, time.December, 31, 23, 59, 59, 0, time.UTC)
	}
	return time.Time{}
}

func offset(t time.Time) time.Duration {
	_, secs := t.Zone()
	return time.Duration(secs) * time.Second
}

// wallClock returns the wall-clock reading of instant t at UTC offset off,
// written as a UTC time.
func wallClock(t time.Time, off time.Duration) time.Time {
	return t.UTC().Add(off)
}
