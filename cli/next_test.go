package cli_test

import (
	"strings"
	"testing"
	"time"

	"github.com/beatlock/beat/cli"
)

// nextTick is one line of `beat next`: the tick in the task's zone and in UTC.
type nextTick struct {
	local, abbrev string // as printed: "2006-01-02 15:04:05", "CET"
	at            time.Time
}

// parseNext reads `beat next` output: a header line per task ("NAME SPEC
// (ZONE)"), then one indented line per tick, "DATE TIME ABBREV RFC3339".
// It checks that both columns of each tick name the same instant, reading
// the local one in the zone the header names.
func parseNext(t *testing.T, out string) (zones map[string]string, ticks map[string][]nextTick) {
	t.Helper()
	zones, ticks = map[string]string{}, map[string][]nextTick{}
	task := ""
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if !strings.HasPrefix(line, " ") {
			if len(f) < 3 {
				t.Fatalf("header line %q: want NAME SPEC (ZONE)", line)
			}
			task = f[0]
			zones[task] = strings.Trim(f[len(f)-1], "()")
			continue
		}
		if task == "" || len(f) != 4 {
			t.Fatalf("tick line %q: want DATE TIME ZONE RFC3339 after a header", line)
		}
		loc, err := time.LoadLocation(zones[task])
		if err != nil {
			t.Fatalf("header of %s: zone %q: %v", task, zones[task], err)
		}
		local, err := time.ParseInLocation("2006-01-02 15:04:05 MST", f[0]+" "+f[1]+" "+f[2], loc)
		if err != nil {
			t.Fatalf("tick line %q: %v", line, err)
		}
		utc, err := time.Parse(time.RFC3339, f[3])
		if err != nil {
			t.Fatalf("tick line %q: %v", line, err)
		}
		if utc.Location() != time.UTC {
			t.Errorf("tick line %q: second column is not in UTC", line)
		}
		if !local.Equal(utc) {
			t.Errorf("tick line %q: the columns disagree: %v (local) vs %v (UTC)", line, local.UTC(), utc)
		}
		// An abbreviation that the zone does not use at that instant would
		// have been read as a made-up zone; check it against the zone.
		if name, _ := utc.In(loc).Zone(); name != f[2] {
			t.Errorf("tick line %q: %s is in %s at that instant, not %s", line, zones[task], name, f[2])
		}
		ticks[task] = append(ticks[task], nextTick{local: f[0] + " " + f[1], abbrev: f[2], at: utc})
	}
	return zones, ticks
}

func TestNext(t *testing.T) {
	before := time.Now()
	r := runMain(t, []string{"next", "--config", "testdata/next.yaml", "--count", "3"}, nil)
	after := time.Now()
	if r.code != cli.ExitOK || r.stderr != "" {
		t.Fatalf("want exit 0 and nothing on stderr, got %s", r)
	}
	zones, ticks := parseNext(t, r.stdout)
	if len(zones) != 2 || len(ticks["hourly"]) != 3 || len(ticks["berlin-morning"]) != 3 {
		t.Fatalf("want 3 ticks for each of hourly and berlin-morning, got %v\n%s", ticks, r.stdout)
	}

	// @every 1h ticks on whole hours since the epoch, in the default zone.
	if zones["hourly"] != "UTC" {
		t.Errorf("hourly is shown in %q, want UTC (the file's timezone)", zones["hourly"])
	}
	for i, tk := range ticks["hourly"] {
		if tk.at.Unix()%3600 != 0 {
			t.Errorf("hourly tick %d at %v: not on a whole hour", i, tk.at)
		}
		if i == 0 && (!tk.at.After(before) || tk.at.After(after.Add(time.Hour))) {
			t.Errorf("first hourly tick %v: want the first whole hour after %v", tk.at, before)
		}
		if i > 0 && tk.at.Sub(ticks["hourly"][i-1].at) != time.Hour {
			t.Errorf("hourly ticks %d and %d are not 1h apart: %v, %v", i-1, i, ticks["hourly"][i-1].at, tk.at)
		}
	}

	// The CRON_TZ task ticks at 06:30 on the wall clock of Berlin, on
	// consecutive days, and is shown in that zone.
	if zones["berlin-morning"] != "Europe/Berlin" {
		t.Errorf("berlin-morning is shown in %q, want Europe/Berlin (its CRON_TZ)", zones["berlin-morning"])
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for i, tk := range ticks["berlin-morning"] {
		if !strings.HasSuffix(tk.local, " 06:30:00") || (tk.abbrev != "CET" && tk.abbrev != "CEST") {
			t.Errorf("berlin-morning tick %d printed as %s %s, want 06:30:00 CET or CEST", i, tk.local, tk.abbrev)
		}
		if i == 0 && (!tk.at.After(before) || tk.at.After(after.Add(25*time.Hour))) {
			t.Errorf("first berlin-morning tick %v: want the first 06:30 in Berlin after %v", tk.at, before)
		}
		if i > 0 {
			y1, m1, d1 := ticks["berlin-morning"][i-1].at.In(berlin).Date()
			if next := time.Date(y1, m1, d1+1, 6, 30, 0, 0, berlin); !tk.at.Equal(next) {
				t.Errorf("berlin-morning tick %d: %v, want the next day's 06:30 %v", i, tk.at.In(berlin), next)
			}
		}
	}
}

func TestNextDefaultCount(t *testing.T) {
	r := runMain(t, []string{"next", "--config", "testdata/next.yaml"}, nil)
	if r.code != cli.ExitOK {
		t.Fatalf("want exit 0, got %s", r)
	}
	_, ticks := parseNext(t, r.stdout)
	if len(ticks["hourly"]) != 5 || len(ticks["berlin-morning"]) != 5 {
		t.Errorf("want 5 ticks per task by default, got %d and %d", len(ticks["hourly"]), len(ticks["berlin-morning"]))
	}
}

func TestNextInvalidConfig(t *testing.T) {
	r := runMain(t, []string{"next", "--config", "../config/testdata/bad_cron.yaml"}, nil)
	if r.code != cli.ExitFailure || r.stdout != "" || !strings.Contains(r.stderr, "bad_cron.yaml:3: ") {
		t.Errorf("want exit 1, no output and the problems on stderr, got %s", r)
	}
}
