package schedule

import (
	"testing"
	"time"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustParse(t *testing.T, spec string, loc *time.Location) Schedule {
	t.Helper()
	s, err := Parse(spec, loc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkTicks asserts the ticks that follow from, compared as instants and
// printed in the schedule's zone.
func checkTicks(t *testing.T, s Schedule, from string, want []string) {
	t.Helper()
	prev := at(t, from)
	for i, w := range want {
		got := s.Next(prev)
		if !got.Equal(at(t, w)) {
			t.Fatalf("tick %d after %s: got %s, want %s", i+1, prev.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano), w)
		}
		prev = got
	}
}

func TestNext(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	tests := []struct {
		name string
		spec string
		loc  *time.Location
		from string
		want []string
	}{
		{"5 fields", "*/5 * * * *", time.UTC, "2024-01-01T00:00:00Z", []string{"2024-01-01T00:05:00Z", "2024-01-01T00:10:00Z"}},
		{"strictly after a tick", "0 * * * *", time.UTC, "2024-01-01T01:00:00Z", []string{"2024-01-01T02:00:00Z"}},
		{"from a fraction of a second", "*/5 * * * *", time.UTC, "2024-01-01T00:04:59.999Z", []string{"2024-01-01T00:05:00Z"}},
		{"6 fields", "*/20 * * * * *", time.UTC, "2024-01-01T00:00:00Z", []string{"2024-01-01T00:00:20Z", "2024-01-01T00:00:40Z", "2024-01-01T00:01:00Z"}},
		{"weekdays by name", "0 30 9 * * mon-fri", time.UTC, "2024-01-05T10:00:00Z", []string{"2024-01-08T09:30:00Z", "2024-01-09T09:30:00Z"}},
		{"months by name", "0 0 1 jan,jul *", time.UTC, "2024-01-01T00:00:00Z", []string{"2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z"}},
		{"day of month or day of week", "0 0 13 * fri", time.UTC, "2024-09-10T00:00:00Z", []string{"2024-09-13T00:00:00Z", "2024-09-20T00:00:00Z"}},
		{"in loc", "0 9 * * *", berlin, "2024-01-01T00:00:00Z", []string{"2024-01-01T09:00:00+01:00", "2024-01-02T09:00:00+01:00"}},
		{"nil loc is UTC", "0 9 * * *", nil, "2024-01-01T00:00:00Z", []string{"2024-01-01T09:00:00Z"}},
		{"CRON_TZ overrides loc", "CRON_TZ=Asia/Tokyo 0 9 * * *", berlin, "2024-01-01T00:00:00Z", []string{"2024-01-02T09:00:00+09:00"}},
		{"TZ overrides loc", "TZ=America/New_York 0 9 * * *", time.UTC, "2024-01-01T00:00:00Z", []string{"2024-01-01T09:00:00-05:00"}},
		{"CRON_TZ with a descriptor", "CRON_TZ=Asia/Tokyo @daily", time.UTC, "2024-01-01T00:00:00Z", []string{"2024-01-01T15:00:00Z"}},
		{"surrounding space", "  @hourly\t", time.UTC, "2024-01-01T00:30:00Z", []string{"2024-01-01T01:00:00Z"}},
		{"@hourly", "@hourly", time.UTC, "2024-01-01T00:30:00Z", []string{"2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"}},
		{"@daily", "@daily", berlin, "2024-01-01T00:30:00Z", []string{"2024-01-02T00:00:00+01:00"}},
		{"@midnight", "@midnight", time.UTC, "2024-01-01T00:30:00Z", []string{"2024-01-02T00:00:00Z"}},
		{"@weekly is Sunday", "@weekly", time.UTC, "2024-01-01T00:00:00Z", []string{"2024-01-07T00:00:00Z", "2024-01-14T00:00:00Z"}},
		{"@monthly", "@monthly", time.UTC, "2024-01-15T00:00:00Z", []string{"2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"}},
		{"@yearly", "@yearly", time.UTC, "2024-01-15T00:00:00Z", []string{"2025-01-01T00:00:00Z"}},
		{"@annually", "@annually", time.UTC, "2024-01-01T00:00:00Z", []string{"2025-01-01T00:00:00Z"}},
		// robfig searches five years ahead; February 29 skips 2100.
		{"leap day across 2100", "0 0 29 2 *", time.UTC, "2096-03-01T00:00:00Z", []string{"2104-02-29T00:00:00Z", "2108-02-29T00:00:00Z"}},

		// 2024-01-01T00:00:00Z is 1704067200s after the epoch, a multiple of
		// 1s, 90s and 24h but not of 7s (1704067204 is).
		{"@every 1s", "@every 1s", time.UTC, "2024-01-01T00:00:00Z", []string{"2024-01-01T00:00:01Z", "2024-01-01T00:00:02Z"}},
		{"@every 1m30s", "@every 1m30s", time.UTC, "2024-01-01T00:00:00Z", []string{"2024-01-01T00:01:30Z", "2024-01-01T00:03:00Z"}},
		{"@every 1m30s from between ticks", "@every 1m30s", time.UTC, "2024-01-01T00:01:29.999Z", []string{"2024-01-01T00:01:30Z"}},
		{"@every 7s", "@every 7s", time.UTC, "2024-01-01T00:00:00Z", []string{"2024-01-01T00:00:04Z", "2024-01-01T00:00:11Z", "2024-01-01T00:00:18Z"}},
		{"@every 24h is midnight UTC in any zone", "@every 24h", berlin, "2024-01-01T00:00:00Z", []string{"2024-01-02T01:00:00+01:00", "2024-01-03T01:00:00+01:00"}},
		{"@every 1500ms", "@every 1500ms", time.UTC, "2024-01-01T00:00:00Z", []string{"2024-01-01T00:00:01.5Z", "2024-01-01T00:00:03Z"}},
		{"@every before the epoch", "@every 7s", time.UTC, "1969-12-31T23:59:50Z", []string{"1969-12-31T23:59:53Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:07Z"}},
		{"@every with CRON_TZ", "CRON_TZ=Asia/Tokyo @every 1h", time.UTC, "2024-01-01T00:10:00Z", []string{"2024-01-01T10:00:00+09:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkTicks(t, mustParse(t, tt.spec, tt.loc), tt.from, tt.want)
		})
	}
}

func TestNextReturnsTheScheduleZone(t *testing.T) {
	tokyo := zone(t, "Asia/Tokyo")
	for _, spec := range []string{"0 9 * * *", "@every 1h"} {
		got := mustParse(t, spec, tokyo).Next(at(t, "2024-01-01T00:00:00Z"))
		if got.Location() != tokyo {
			t.Errorf("%s: Next returned a time in %v, want Asia/Tokyo", spec, got.Location())
		}
	}
}

// TestDST pins the behaviour described under "Daylight saving time" in the
// package documentation. In 2024 Berlin jumped 02:00 CET -> 03:00 CEST on
// March 31 and fell back 03:00 CEST -> 02:00 CET on October 27; New York
// jumped 02:00 EST -> 03:00 EDT on March 10 and fell back 02:00 EDT -> 01:00
// EST on November 3.
func TestDST(t *testing.T) {
	tests := []struct {
		name string
		zone string
		spec string
		from string
		want []string
	}{
		{"Berlin daily 02:30, spring: at the end of the jump", "Europe/Berlin", "30 2 * * *", "2024-03-30T12:00:00+01:00",
			[]string{"2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"}},
		{"Berlin daily 02:30, fall: first pass only", "Europe/Berlin", "30 2 * * *", "2024-10-26T12:00:00+02:00",
			[]string{"2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"}},
		{"Berlin daily 02:30, from inside the second pass", "Europe/Berlin", "30 2 * * *", "2024-10-27T02:10:00+01:00",
			[]string{"2024-10-28T02:30:00+01:00"}},
		{"Berlin daily 02:30, from just before the jump", "Europe/Berlin", "30 2 * * *", "2024-03-31T01:59:59+01:00",
			[]string{"2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"}},
		{"Berlin daily 02:30, from the end of the jump", "Europe/Berlin", "30 2 * * *", "2024-03-31T03:00:00+02:00",
			[]string{"2024-04-01T02:30:00+02:00"}},
		{"Berlin hourly, spring: 02:00 does not exist", "Europe/Berlin", "0 * * * *", "2024-03-31T00:30:00+01:00",
			[]string{"2024-03-31T01:00:00+01:00", "2024-03-31T03:00:00+02:00", "2024-03-31T04:00:00+02:00"}},
		{"Berlin hourly, fall: 02:00 twice", "Europe/Berlin", "@hourly", "2024-10-27T00:30:00+02:00",
			[]string{"2024-10-27T01:00:00+02:00", "2024-10-27T02:00:00+02:00", "2024-10-27T02:00:00+01:00", "2024-10-27T03:00:00+01:00"}},
		{"Berlin every 20 minutes, fall: both passes", "Europe/Berlin", "*/20 * * * *", "2024-10-27T02:30:00+02:00",
			[]string{"2024-10-27T02:40:00+02:00", "2024-10-27T02:00:00+01:00", "2024-10-27T02:20:00+01:00"}},
		{"Berlin 02:xx every 20 minutes, spring: once at 03:00", "Europe/Berlin", "*/20 2 * * *", "2024-03-31T00:00:00+01:00",
			[]string{"2024-03-31T03:00:00+02:00", "2024-04-01T02:00:00+02:00"}},
		{"Berlin 02:xx every 20 minutes, fall: first pass only", "Europe/Berlin", "*/20 2 * * *", "2024-10-27T00:00:00+02:00",
			[]string{"2024-10-27T02:00:00+02:00", "2024-10-27T02:20:00+02:00", "2024-10-27T02:40:00+02:00", "2024-10-28T02:00:00+01:00"}},
		{"Berlin 03:00 and a skipped 02:30 share one tick", "Europe/Berlin", "0,30 2,3 * * *", "2024-03-31T01:00:00+01:00",
			[]string{"2024-03-31T03:00:00+02:00", "2024-03-31T03:30:00+02:00", "2024-04-01T02:00:00+02:00"}},
		{"Berlin @daily is untouched", "Europe/Berlin", "@daily", "2024-10-26T12:00:00+02:00",
			[]string{"2024-10-27T00:00:00+02:00", "2024-10-28T00:00:00+01:00"}},
		{"New York daily 02:30, spring: at the end of the jump", "America/New_York", "30 2 * * *", "2024-03-09T12:00:00-05:00",
			[]string{"2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"}},
		{"New York daily 02:30, fall: 02:30 is not repeated", "America/New_York", "30 2 * * *", "2024-11-02T12:00:00-04:00",
			[]string{"2024-11-03T02:30:00-05:00", "2024-11-04T02:30:00-05:00"}},
		{"New York daily 01:30, fall: first pass only", "America/New_York", "30 1 * * *", "2024-11-02T12:00:00-04:00",
			[]string{"2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"}},
		{"New York hourly, spring", "America/New_York", "0 * * * *", "2024-03-10T00:30:00-05:00",
			[]string{"2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00"}},
		{"New York hourly, fall: 01:00 twice", "America/New_York", "0 * * * *", "2024-11-03T00:30:00-04:00",
			[]string{"2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00"}},
		{"Lord Howe half-hour jump", "Australia/Lord_Howe", "15 2 * * *", "2024-10-05T12:00:00+10:30",
			[]string{"2024-10-06T02:30:00+11:00", "2024-10-07T02:15:00+11:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkTicks(t, mustParse(t, tt.spec, zone(t, tt.zone)), tt.from, tt.want)
		})
	}
}

// TestDSTYear walks a whole year: ticks strictly increase, a daily task runs
// on every local date exactly once, and an hourly task every elapsed hour.
func TestDSTYear(t *testing.T) {
	tests := []struct {
		zone, spec string
		want       int
		perDate    bool // at most one tick per local date
	}{
		{"Europe/Berlin", "30 2 * * *", 366, true},
		{"America/New_York", "30 2 * * *", 366, true},
		{"America/New_York", "30 1 * * *", 366, true},
		{"Europe/Berlin", "0 * * * *", 366 * 24, false},
		{"America/New_York", "0 * * * *", 366 * 24, false},
	}
	for _, tt := range tests {
		t.Run(tt.zone+" "+tt.spec, func(t *testing.T) {
			loc := zone(t, tt.zone)
			s := mustParse(t, tt.spec, loc)
			from, to := time.Date(2024, 1, 1, 0, 0, 0, 0, loc), time.Date(2025, 1, 1, 0, 0, 0, 0, loc)
			dates := map[string]bool{}
			n := 0
			for tick, prev := s.Next(from), from; !tick.After(to); prev, tick = tick, s.Next(tick) {
				if !tick.After(prev) {
					t.Fatalf("Next(%v) = %v, not after", prev, tick)
				}
				if d := tick.Format(time.DateOnly); tt.perDate && dates[d] {
					t.Fatalf("second tick on %s: %v", d, tick)
				} else {
					dates[d] = true
				}
				n++
			}
			if n != tt.want {
				t.Errorf("%d ticks in 2024, want %d", n, tt.want)
			}
		})
	}
}

func TestBetween(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	tests := []struct {
		name       string
		spec       string
		loc        *time.Location
		from, to   string
		limit      int
		wantLatest string // "" for none
		wantCount  int
	}{
		{"every: all", "@every 1m", time.UTC, "2024-01-01T00:00:00Z", "2024-01-01T00:10:00Z", 100, "2024-01-01T00:10:00Z", 10},
		{"every: from excluded, to included", "@every 1m", time.UTC, "2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z", 100, "2024-01-01T00:02:00Z", 1},
		{"every: capped", "@every 1m", time.UTC, "2024-01-01T00:00:00Z", "2024-01-01T00:10:30Z", 3, "2024-01-01T00:10:00Z", 3},
		{"every: none", "@every 1m", time.UTC, "2024-01-01T00:00:10Z", "2024-01-01T00:00:50Z", 100, "", 0},
		{"every: limit 0 still finds the latest", "@every 1m", time.UTC, "2024-01-01T00:00:00Z", "2024-01-01T00:10:30Z", 0, "2024-01-01T00:10:00Z", 0},
		{"every: 10 years of 1s", "@every 1s", time.UTC, "2024-01-01T00:00:00Z", "2034-01-01T00:00:00.5Z", 10, "2034-01-01T00:00:00Z", 10},
		{"every: across the epoch", "@every 7s", time.UTC, "1969-12-31T23:59:50Z", "1970-01-01T00:00:10Z", 100, "1970-01-01T00:00:07Z", 3},
		{"every: empty range", "@every 1s", time.UTC, "2024-01-01T00:00:10Z", "2024-01-01T00:00:10Z", 10, "", 0},
		{"every: reversed range", "@every 1s", time.UTC, "2024-01-01T00:00:10Z", "2024-01-01T00:00:00Z", 10, "", 0},
		{"cron: all", "*/5 * * * *", time.UTC, "2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z", 100, "2024-01-01T01:00:00Z", 12},
		{"cron: capped", "*/5 * * * *", time.UTC, "2024-01-01T00:00:00Z", "2024-01-01T01:04:59Z", 5, "2024-01-01T01:00:00Z", 5},
		{"cron: exactly limit", "*/5 * * * *", time.UTC, "2024-01-01T00:00:00Z", "2024-01-01T00:25:00Z", 5, "2024-01-01T00:25:00Z", 5},
		{"cron: none", "0 0 1 1 *", time.UTC, "2024-01-01T00:00:00Z", "2024-12-31T23:59:59Z", 5, "", 0},
		{"cron: limit 0 still finds the latest", "0 12 * * *", time.UTC, "2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z", 0, "2024-02-29T12:00:00Z", 0},
		{"cron: 10 years of seconds", "* * * * * *", time.UTC, "2024-01-01T00:00:00Z", "2034-01-01T00:00:00.5Z", 10, "2034-01-01T00:00:00Z", 10},
		{"cron: 10 years, latest far from the limit", "0 0 29 2 *", time.UTC, "2000-01-01T00:00:00Z", "2034-01-01T00:00:00Z", 2, "2032-02-29T00:00:00Z", 2},
		{"every: from the zero time", "@every 1h", time.UTC, "0001-01-01T00:00:00Z", "2024-03-01T00:30:00Z", 3, "2024-03-01T00:00:00Z", 3},
		{"cron: from the zero time", "0 12 * * *", berlin, "0001-01-01T00:00:00Z", "2024-03-01T00:00:00Z", 3, "2024-02-29T12:00:00+01:00", 3},
		{"cron: from the zero time, all", "0 0 1 1 *", time.UTC, "0001-01-01T00:00:00Z", "2024-03-01T00:00:00Z", 5000, "2024-01-01T00:00:00Z", 2023}, // years 2 to 2024; from is excluded
		{"cron: hourly across fall back", "0 * * * *", berlin, "2024-10-27T00:00:00+02:00", "2024-10-28T00:00:00+01:00", 100, "2024-10-28T00:00:00+01:00", 25},
		{"cron: daily across fall back", "30 2 * * *", berlin, "2024-10-26T12:00:00+02:00", "2024-10-27T12:00:00+01:00", 100, "2024-10-27T02:30:00+02:00", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			latest, count := Between(mustParse(t, tt.spec, tt.loc), at(t, tt.from), at(t, tt.to), tt.limit)
			var want time.Time
			if tt.wantLatest != "" {
				want = at(t, tt.wantLatest)
			}
			if !latest.Equal(want) || count != tt.wantCount {
				t.Errorf("Between = %v, %d; want %v, %d", latest, count, want, tt.wantCount)
			}
		})
	}
}

// TestBetweenMatchesWalking compares Between, around every edge of limit, with walking
// Next through the range one tick at a time.
func TestBetweenMatchesWalking(t *testing.T) {
	ranges := [][2]string{
		{"2024-03-30T22:17:03Z", "2024-04-01T01:00:00Z"},
		{"2024-10-26T23:59:59.5Z", "2024-10-27T03:00:00Z"},
		{"2024-01-01T00:00:00Z", "2024-01-01T00:00:00.999Z"},
	}
	for _, spec := range []string{"*/7 * * * *", "30 2 * * *", "@hourly", "*/13 * * * * *", "@every 11s", "@every 1h"} {
		s := mustParse(t, spec, zone(t, "Europe/Berlin"))
		for _, r := range ranges {
			from, to := at(t, r[0]), at(t, r[1])
			var ticks []time.Time
			for n := s.Next(from); !n.After(to); n = s.Next(n) {
				ticks = append(ticks, n)
			}
			for _, limit := range []int{0, 1, 2, len(ticks) - 1, len(ticks), len(ticks) + 1} {
				var want time.Time
				if len(ticks) > 0 {
					want = ticks[len(ticks)-1]
				}
				wantCount := max(0, min(limit, len(ticks)))
				latest, count := Between(s, from, to, limit)
				if !latest.Equal(want) || count != wantCount {
					t.Errorf("%s in (%s, %s] limit %d: got %v, %d; want %v, %d", spec, r[0], r[1], limit, latest, count, want, wantCount)
				}
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		spec string
		want string
	}{
		{"", `schedule "": empty; examples: "*/5 * * * *", "0 */5 * * * *", "@every 30s"`},
		{"   ", `schedule "   ": empty; examples: "*/5 * * * *", "0 */5 * * * *", "@every 30s"`},
		{"*/5 * * *", `schedule "*/5 * * *": expected 5 or 6 fields (minute hour day-of-month month day-of-week, optionally preceded by seconds), found 4; examples: "*/5 * * * *", "0 */5 * * * *", "@every 30s"`},
		{"0 0 0 * * * *", `schedule "0 0 0 * * * *": expected 5 or 6 fields (minute hour day-of-month month day-of-week, optionally preceded by seconds), found 7; examples: "*/5 * * * *", "0 */5 * * * *", "@every 30s"`},
		{"61 * * * *", `schedule "61 * * * *": minute field "61": end of range (61) above maximum (59): 61 (allowed: 0-59)`},
		{"0 24 * * *", `schedule "0 24 * * *": hour field "24": end of range (24) above maximum (23): 24 (allowed: 0-23)`},
		{"0 0 * * 7", `schedule "0 0 * * 7": day-of-week field "7": end of range (7) above maximum (6): 7 (allowed: 0-6 or sun-sat)`},
		{"0 0 0 * foo *", `schedule "0 0 0 * foo *": month field "foo": failed to parse int from foo: strconv.Atoi: parsing "foo": invalid syntax (allowed: 1-12 or jan-dec)`},
		{"60 * * * * *", `schedule "60 * * * * *": second field "60": end of range (60) above maximum (59): 60 (allowed: 0-59)`},
		{"0 0 0 * *", `schedule "0 0 0 * *": day-of-month field "0": beginning of range (0) below minimum (1): 0 (allowed: 1-31)`},
		{"0 0 1 TZ= 0", `schedule "0 0 1 TZ= 0": month field "TZ=": unexpected '=' (allowed: 1-12 or jan-dec, *, ?, lists a,b, ranges a-b, steps */n)`},
		{"0 0 * * 1;2", `schedule "0 0 * * 1;2": day-of-week field "1;2": unexpected ';' (allowed: 0-6 or sun-sat, *, ?, lists a,b, ranges a-b, steps */n)`},
		{"0 , * * *", `schedule "0 , * * *": hour field matches nothing (allowed: 0-23)`},
		{"0 0 30 2 *", `schedule "0 0 30 2 *": no date matches the day-of-month, month and day-of-week fields together, so it would never run`},
		{"@often", `schedule "@often": unknown descriptor "@often": use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, or @every <duration>`},
		{"@daily 5", `schedule "@daily 5": unknown descriptor "@daily 5": use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, or @every <duration>`},
		{"@every", `schedule "@every": write "@every" and one duration, like "@every 30s" or "@every 1h30m"`},
		{"@every 1m 2m", `schedule "@every 1m 2m": write "@every" and one duration, like "@every 30s" or "@every 1h30m"`},
		{"@every 5x", `schedule "@every 5x": invalid duration "5x": use a number with a unit, like "30s", "1m30s" or "2h"`},
		{"@every 30", `schedule "@every 30": invalid duration "30": use a number with a unit, like "30s", "1m30s" or "2h"`},
		{"@every 500ms", `schedule "@every 500ms": interval 500ms is shorter than the minimum of 1s`},
		{"@every -1h", `schedule "@every -1h": interval -1h0m0s is shorter than the minimum of 1s`},
		{"@every 1.0005s", `schedule "@every 1.0005s": interval 1.0005s is not a whole number of milliseconds`},
		{"CRON_TZ=Europe/Berlin", `schedule "CRON_TZ=Europe/Berlin": nothing follows the time zone; write e.g. "CRON_TZ=Europe/Berlin 0 9 * * *"`},
		{"TZ=", `schedule "TZ=": nothing follows the time zone; write e.g. "CRON_TZ=Europe/Berlin 0 9 * * *"`},
		{"CRON_TZ= 0 9 * * *", `schedule "CRON_TZ= 0 9 * * *": empty time zone; name an IANA zone, like "Europe/Berlin" or "UTC"`},
		{"CRON_TZ=Mars/Olympus 0 9 * * *", `schedule "CRON_TZ=Mars/Olympus 0 9 * * *": unknown time zone "Mars/Olympus"; name an IANA zone, like "Europe/Berlin" or "UTC"`},
		{"CRON_TZ=Local 0 9 * * *", `schedule "CRON_TZ=Local 0 9 * * *": time zone "Local" differs between machines; name an IANA zone, like "Europe/Berlin" or "UTC"`},
		{"TZ=UTC TZ=UTC 0 9 * * *", `schedule "TZ=UTC TZ=UTC 0 9 * * *": more than one time zone prefix`},
		{"TZ=UTC TZ=x", `schedule "TZ=UTC TZ=x": more than one time zone prefix`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := Parse(tt.spec, time.UTC)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tt.spec, s)
			}
			if err.Error() != tt.want {
				t.Errorf("Parse(%q) error\n got: %s\nwant: %s", tt.spec, err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"*/5 * * * *", "0 */5 * * * *", "@every 30s", "@hourly", "CRON_TZ=Europe/Berlin 30 2 * * *",
		"TZ=America/New_York 0 1 * * *", "0 0 29 2 *", "TZ=", "@every 1.5s", "1-5/2,7 * ? jan-mar mon", "0 , * * *",
	} {
		f.Add(s)
	}
	from := time.Date(2024, 10, 27, 0, 30, 0, 0, time.UTC)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec, berlin)
		if err != nil {
			return
		}
		prev := from
		for range 5 {
			n := s.Next(prev)
			if n.IsZero() {
				break
			}
			if !n.After(prev) {
				t.Fatalf("%q: Next(%v) = %v, not after", spec, prev, n)
			}
			prev = n
		}
		Between(s, from, from.AddDate(1, 0, 0), 3)
	})
}

func TestMinInterval(t *testing.T) {
	from := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		spec string
		want time.Duration
	}{
		{"@every 90s", 90 * time.Second},
		{"*/5 * * * *", 5 * time.Minute},
		{"0 9,17 * * *", 8 * time.Hour},      // 9:00 to 17:00, not 17:00 to 9:00
		{"0 0 1,2 * *", 24 * time.Hour},      // the 1st to the 2nd of a month
		{"*/20 * * * * *", 20 * time.Second}, // six fields
		{"0 0 * * 1", 7 * 24 * time.Hour},    // weekly
		{"0 0 1 1 *", 365 * 24 * time.Hour},  // yearly, from 2027 (no leap day before 2028)
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			s, err := Parse(c.spec, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			if got := MinInterval(s, from, 50); got != c.want {
				t.Errorf("MinInterval(%q) = %v; want %v", c.spec, got, c.want)
			}
		})
	}
}
