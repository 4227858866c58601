package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

type logArgs struct {
	message string
	level   slog.Level
}

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

func parseLogArgs(args map[string]any) (logArgs, error) {
	a := logArgs{level: slog.LevelInfo}
	errs := checkKnown(args, "message", "level")
	msg, ok, err := optString(args, "message")
	switch {
	case err != nil:
		errs = append(errs, err)
	case !ok || msg == "":
		errs = append(errs, errors.New(`args.message: required; write the text to log, e.g. message: "still here"`))
	default:
		a.message = msg
	}
	lvl, ok, err := optString(args, "level")
	switch {
	case err != nil:
		errs = append(errs, err)
	case ok:
		l, known := logLevels[strings.ToLower(lvl)]
		if !known {
			errs = append(errs, fmt.Errorf("args.level: %q is not a level; use one of debug, info, warn, error", lvl))
		}
		a.level = l
	}
	return a, errors.Join(errs...)
}

func validateLogArgs(args map[string]any) error {
	_, err := parseLogArgs(args)
	return err
}

// runLog is the built-in "log" task: it writes args.message through the
// run's logger, which makes it a cheap way to watch the schedule fire.
func runLog(ctx context.Context, run Run) error {
	a, err := parseLogArgs(run.Args)
	if err != nil {
		return fmt.Errorf("log task %q: %w", run.Task, err)
	}
	run.Log().LogAttrs(ctx, a.level, a.message)
	return nil
}
