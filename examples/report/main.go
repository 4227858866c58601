// Command report is beat with one task type of its own: it shows how a
// program registers Go tasks and then hands over to the same command line
// as cmd/beat.
//
//	go run ./examples/report run --config examples/report/schedule.yaml
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/beatlock/beat/cli"
	"github.com/beatlock/beat/tasks"
)

type reportArgs struct {
	Recipients []string `json:"recipients"`
}

func validate(args map[string]any) error {
	var a reportArgs
	if err := tasks.DecodeArgs(args, &a); err != nil {
		return err
	}
	if len(a.Recipients) == 0 {
		return errors.New("args.recipients: required; write a list, e.g. recipients: [ops@example.com]")
	}
	return nil
}

// report pretends to send a report. A real one would pass run.FencingToken
// to the systems it writes to, so that a replica that lost its lease while
// paused cannot overwrite a newer run's work.
func report(ctx context.Context, run tasks.Run) error {
	var a reportArgs
	if err := run.DecodeArgs(&a); err != nil {
		return err
	}
	run.Log().Info("report sent", "recipients", a.Recipients, "for", run.ScheduledAt.Format("2006-01-02 15:04"))
	return ctx.Err()
}

func main() {
	tasks.Register("report", report, tasks.WithArgs(validate))
	if code := cli.Main(context.Background(), os.Args[1:]); code != 0 {
		fmt.Fprintln(os.Stderr, "report: exit", code)
		os.Exit(code)
	}
}
