package schedule

import (
	"testing"
	"time"
)

// benchSpecs covers each kind of schedule: five- and six-field cron specs,
// descriptors, cron specs in a zone with DST (a fixed hour, ticking once per
// wall-clock time, and every hour, following elapsed time) and @every.
var benchSpecs = []struct{ name, spec string }{
	{"every-5-min", "*/5 * * * *"},
	{"weekdays-9am", "0 9 * * MON-FRI"},
	{"every-10-sec-6-fields", "*/10 * * * * *"},
	{"hourly", "@hourly"},
	{"daily", "@daily"},
	{"berlin-2:30-dst", "CRON_TZ=Europe/Berlin 30 2 * * *"},
	{"new-york-hourly-dst", "CRON_TZ=America/New_York 0 * * * *"},
	{"@every-30s", "@every 30s"},
	{"@every-1h30m", "@every 1h30m"},
}

var benchStart = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func benchParse(b *testing.B, spec string) Schedule {
	b.Helper()
	s, err := Parse(spec, time.UTC)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkNext walks from tick to tick, as the scheduler's loop does after
// each tick, so that the ticks met include month ends and DST changes.
func BenchmarkNext(b *testing.B) {
	for _, c := range benchSpecs {
		b.Run(c.name, func(b *testing.B) {
			s := benchParse(b, c.spec)
			b.ReportAllocs()
			t := benchStart
			for b.Loop() {
				if t = s.Next(t); t.IsZero() {
					b.Fatal("no next tick")
				}
			}
		})
	}
}

// BenchmarkBetween measures the calls of the scheduler: the latest tick in
// the deadline window on start (limit 1), the ticks missed over an outage,
// counted up to 10,000 (its missedLimit) and only then bisected, and the
// latest tick alone (limit 0).
func BenchmarkBetween(b *testing.B) {
	const year = 365 * 24 * time.Hour
	// A minute's window from 12:04:30 holds the tick of 12:05.
	startWindow := benchStart.Add(4*time.Minute + 30*time.Second)
	cases := []struct {
		name, spec string
		from       time.Time
		span       time.Duration
		limit      int
	}{
		{"start/every-5-min", "*/5 * * * *", startWindow, time.Minute, 1},
		{"start/@every-30s", "@every 30s", startWindow, time.Minute, 1},
		{"hour/every-5-min", "*/5 * * * *", benchStart, time.Hour, 10_000},
		{"week/every-5-min", "*/5 * * * *", benchStart, 7 * 24 * time.Hour, 10_000},
		{"year/every-5-min", "*/5 * * * *", benchStart, year, 10_000},
		{"year/weekdays-9am", "0 9 * * MON-FRI", benchStart, year, 10_000},
		{"year/@every-30s", "@every 30s", benchStart, year, 10_000},
		{"year-latest-only/every-5-min", "*/5 * * * *", benchStart, year, 0},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s := benchParse(b, c.spec)
			to := c.from.Add(c.span)
			b.ReportAllocs()
			for b.Loop() {
				if latest, _ := Between(s, c.from, to, c.limit); latest.IsZero() {
					b.Fatal("no tick")
				}
			}
		})
	}
}

// BenchmarkMinInterval measures the check of jitter against a task's
// interval, which looks at 400 ticks of a cron spec (the scheduler's
// intervalSample).
func BenchmarkMinInterval(b *testing.B) {
	for _, c := range []struct{ name, spec string }{{"weekdays-9am", "0 9 * * MON-FRI"}, {"@every-30s", "@every 30s"}} {
		b.Run(c.name, func(b *testing.B) {
			s := benchParse(b, c.spec)
			b.ReportAllocs()
			for b.Loop() {
				if MinInterval(s, benchStart, 400) <= 0 {
					b.Fatal("no interval")
				}
			}
		})
	}
}
