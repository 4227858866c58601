package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// redisLogger takes go-redis's own messages (its connection pool's dial
// errors) into beat's log at debug level: go-redis would print them as plain
// text on stderr, in the middle of JSON logs, and the scheduler already logs
// what they mean for the ticks ("claim failed").
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.Log(ctx, slog.LevelDebug, "redis client: "+fmt.Sprintf(format, v...))
}

func newLogger(e *env, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	switch strings.ToLower(format) {
	case "text":
		opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: logValues(false)}
		return slog.New(slog.NewTextHandler(e.stderr, opts)), nil
	case "json":
		opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: logValues(true)}
		return slog.New(slog.NewJSONHandler(e.stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

// logTimeFormat is the one format of every time in beat's logs, the
// record's own included: RFC 3339 in UTC, to the millisecond, always with
// three decimals, so that times sort as text and read the same on every
// replica whatever its zone.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// logValues is the handlers' ReplaceAttr, applied to every attribute,
// inside groups too: a time.Time becomes logTimeFormat in UTC; a
// time.Duration becomes, in JSON, a number of seconds (slog would write
// nanoseconds), and stays a Go duration string ("1.5s") in text.
func logValues(json bool) func(groups []string, a slog.Attr) slog.Attr {
	return func(_ []string, a slog.Attr) slog.Attr {
		switch a.Value.Kind() {
		case slog.KindTime:
			a.Value = slog.StringValue(a.Value.Time().UTC().Format(logTimeFormat))
		case slog.KindDuration:
			if json {
				a.Value = slog.Float64Value(a.Value.Duration().Seconds())
			}
		}
		return a
	}
}
