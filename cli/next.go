package cli

import (
	"fmt"
	"text/tabwriter"
	"time"
)

// next prints each task's next fire times in its own zone and in UTC.
func (e *env) next(args []string) int {
	fs, path := e.flags("next")
	count := fs.Int("count", 5, "print `N` fire times per task, from 1 to 1000")
	if ok, code := e.parse(fs, args); !ok {
		return code
	}
	if *count < 1 || *count > 1000 {
		return e.usageError(fs, "--count %d: use a number from 1 to 1000", *count)
	}
	cfg, ok := e.load(*path)
	if !ok {
		return ExitFailure
	}
	now := time.Now()
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, t := range cfg.Tasks {
		loc := t.Location
		fmt.Fprintf(w, "%s\t%s\t(%s)", t.Name, t.Spec, loc)
		if t.Suspend {
			fmt.Fprint(w, "\tsuspended")
		}
		fmt.Fprintln(w)
		tick := now
		for range *count {
			tick = t.Schedule.Next(tick)
			if tick.IsZero() {
				fmt.Fprintln(w, "\t(no more ticks)")
				break
			}
			fmt.Fprintf(w, "\t%s\t%s\n", tick.In(loc).Format("2006-01-02 15:04:05 MST"), tick.UTC().Format(time.RFC3339))
		}
	}
	w.Flush()
	return ExitOK
}
