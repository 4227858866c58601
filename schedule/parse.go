package schedule

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"
)

// Schedule yields the tick instants of one task.
type Schedule interface {
	// Next returns the first tick strictly after t, or the zero time if there is none.
	Next(t time.Time) time.Time
}

const examples = `examples: "*/5 * * * *", "0 */5 * * * *", "@every 30s"`

// field describes one cron field, for parsing it alone and naming it in errors.
type field struct {
	name    string
	option  cron.ParseOption
	allowed string
}

var fields = []field{
	{"second", cron.Second, "0-59"},
	{"minute", cron.Minute, "0-59"},
	{"hour", cron.Hour, "0-23"},
	{"day-of-month", cron.Dom, "1-31"},
	{"month", cron.Month, "1-12 or jan-dec"},
	{"day-of-week", cron.Dow, "0-6 or sun-sat"},
}

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var descriptors = []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}

// Parse reads a spec (see the package documentation). Cron specs tick on the
// wall clock of loc, unless the spec names its own zone; nil means UTC.
func Parse(spec string, loc *time.Location) (Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	s, err := parse(strings.TrimSpace(spec), loc)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", spec, err)
	}
	return s, nil
}

func parse(text string, loc *time.Location) (Schedule, error) {
	if text == "" {
		return nil, errors.New("empty; " + examples)
	}
	text, loc, err := splitZone(text, loc)
	if err != nil {
		return nil, err
	}
	words := strings.Fields(text)
	switch {
	case words[0] == "@every":
		if len(words) != 2 {
			return nil, errors.New(`write "@every" and one duration, like "@every 30s" or "@every 1h30m"`)
		}
		return parseEvery(words[1], loc)
	case strings.HasPrefix(words[0], "@"):
		if len(words) != 1 || !slices.Contains(descriptors, words[0]) {
			return nil, fmt.Errorf("unknown descriptor %q: use one of %s, or @every <duration>", text, strings.Join(descriptors, ", "))
		}
		return newCron(parser, text, loc)
	case len(words) != 5 && len(words) != 6:
		return nil, fmt.Errorf("expected 5 or 6 fields (minute hour day-of-month month day-of-week, optionally preceded by seconds), found %d; %s", len(words), examples)
	}
	if len(words) == 5 {
		words = append([]string{"0"}, words...)
	}
	for i, w := range words {
		// robfig reads a field starting with "TZ=" as a zone prefix, and
		// panics on it.
		if j := strings.IndexFunc(w, notInField); j >= 0 {
			return nil, fmt.Errorf("%s field %q: unexpected %q (allowed: %s, *, ?, lists a,b, ranges a-b, steps */n)", fields[i].name, w, []rune(w[j:])[0], fields[i].allowed)
		}
		// Parsing each field alone lets the error name the field, which
		// robfig's message does not.
		if _, err := cron.NewParser(fields[i].option).Parse(w); err != nil {
			return nil, fmt.Errorf("%s field %q: %w (allowed: %s)", fields[i].name, w, err, fields[i].allowed)
		}
	}
	return newCron(parser, strings.Join(words, " "), loc)
}

// splitZone strips a CRON_TZ= or TZ= prefix. It is done here rather than by
// robfig, whose parser panics on a prefix with nothing after it.
// SpecLocation is the zone spec's ticks are computed in: the one its
// CRON_TZ= or TZ= prefix names, else loc.
func SpecLocation(spec string, loc *time.Location) (*time.Location, error) {
	_, l, err := splitZone(strings.TrimSpace(spec), loc)
	return l, err
}

func splitZone(text string, loc *time.Location) (string, *time.Location, error) {
	if !hasZonePrefix(text) {
		return text, loc, nil
	}
	after := text[strings.IndexByte(text, '=')+1:]
	i := strings.IndexFunc(after, unicode.IsSpace)
	if i < 0 {
		return "", nil, errors.New(`nothing follows the time zone; write e.g. "CRON_TZ=Europe/Berlin 0 9 * * *"`)
	}
	name, rest := after[:i], strings.TrimSpace(after[i:])
	if hasZonePrefix(rest) {
		return "", nil, errors.New("more than one time zone prefix")
	}
	l, err := LoadLocation(name)
	if err != nil {
		return "", nil, err
	}
	return rest, l, nil
}

func notInField(r rune) bool {
	return !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || strings.ContainsRune("*?,/-", r))
}

func hasZonePrefix(s string) bool {
	return strings.HasPrefix(s, "CRON_TZ=") || strings.HasPrefix(s, "TZ=")
}

// LoadLocation loads a time zone by its IANA name. It refuses "" and
// "Local", which mean different zones on different machines: replicas must
// agree on every tick.
func LoadLocation(name string) (*time.Location, error) {
	const hint = `name an IANA zone, like "Europe/Berlin" or "UTC"`
	switch name {
	case "":
		return nil, errors.New("empty time zone; " + hint)
	case "Local":
		return nil, errors.New(`time zone "Local" differs between machines; ` + hint)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q; %s", name, hint)
	}
	return loc, nil
}
