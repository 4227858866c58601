package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/status"
)

// status prints the tasks' records in the lock store, and repairs them on
// request: --release revokes a stuck lock, --prune removes the records of
// tasks no longer in the schedule.
func (e *env) status(ctx context.Context, args []string) int {
	fs, path := e.flags("status")
	asJSON := fs.Bool("json", false, "print the status as JSON, for scripts")
	release := fs.String("release", "", "revoke the lock of `TASK`, whoever holds it: its run is cancelled, and the task is free a lock ttl later (asks first)")
	prune := fs.Bool("prune", false, "remove the records of tasks that are no longer in the schedule (asks first)")
	minAge := fs.Duration("min-age", time.Hour, "with --prune: keep the records of tasks whose last tick is more recent than `DURATION` (a replica still running an older schedule could claim it again); at least the tasks' starting deadline")
	yes := fs.Bool("yes", false, "do not ask before --release or --prune")
	if ok, code := e.parse(fs, args); !ok {
		return code
	}
	if *release != "" && *prune {
		return e.usageError(fs, "give --release or --prune, not both")
	}
	cfg, ok := e.load(*path)
	if !ok {
		return ExitFailure
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	var rep status.Report
	var ins lock.Inspector
	switch cfg.Lock.Backend {
	case "memory":
		if *release != "" || *prune {
			fmt.Fprintln(e.stderr, "beat status: the memory backend keeps its records inside the running beat process, which --release and --prune cannot reach; restarting that process clears them")
			return ExitFailure
		}
		var err error
		if rep, err = fetchStatus(ctx, cfg); err != nil {
			fmt.Fprintf(e.stderr, "beat status: %v\n", err)
			return ExitFailure
		}
	default:
		store, err := openStore(ctx, cfg, slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		if err != nil {
			fmt.Fprintf(e.stderr, "beat status: %v\n", err)
			return ExitFailure
		}
		defer store.Close()
		if ins = store.Inspector; ins == nil {
			fmt.Fprintf(e.stderr, "beat status: the %s backend cannot list its records\n", cfg.Lock.Backend)
			return ExitFailure
		}
		if rep, err = status.Build(ctx, cfg, ins); err != nil {
			fmt.Fprintf(e.stderr, "beat status: %v\n", err)
			return ExitFailure
		}
	}

	switch {
	case *release != "":
		return e.releaseTask(ctx, ins, rep, *release, cfg.Lock.TTL, *yes)
	case *prune:
		return e.pruneStale(ctx, ins, rep, *minAge, *yes)
	case *asJSON:
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return ExitFailure
		}
	default:
		if err := rep.WriteText(e.stdout); err != nil {
			return ExitFailure
		}
	}
	return ExitOK
}

// fetchStatus asks a running beat on the memory backend for its status,
// at its listener.
func fetchStatus(ctx context.Context, cfg *config.Config) (status.Report, error) {
	var rep status.Report
	if cfg.HTTP.Listen == "" {
		return rep, errors.New("the memory backend keeps its records inside the running beat process; set http.listen (or BEAT_HTTP_LISTEN) for it and for this command, and `beat status` asks it at /status")
	}
	host, port, _ := net.SplitHostPort(cfg.HTTP.Listen) // validated
	if port == "0" {
		return rep, fmt.Errorf("http.listen %q picks a free port at each start, which this command cannot know; give the listener a fixed port", cfg.HTTP.Listen)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return rep, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rep, fmt.Errorf("no beat answers at %s (the memory backend's records live in the running process): %w", url, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return rep, fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return rep, fmt.Errorf("%s: not a status report: %w", url, err)
	}
	return rep, nil
}

// releaseTask revokes the lock of task for a lock ttl: the run holding it
// learns at its next renewal that it lost it, and has stopped trusting its
// lease by the time another run can start.
func (e *env) releaseTask(ctx context.Context, ins lock.Inspector, rep status.Report, task string, ttl time.Duration, yes bool) int {
	t, found := rep.Find(task)
	if !found {
		fmt.Fprintf(e.stderr, "beat status: no task %q in the schedule or in the lock store\n", task)
		return ExitFailure
	}
	if t.Holder == "" || t.Holder == lock.RevokedOwner {
		fmt.Fprintf(e.stdout, "%s: its lock is not held; nothing to release\n", task)
		return ExitOK
	}
	question := fmt.Sprintf("Revoke the lock of %s held by %s (%.1fs left)? Its run is cancelled at its next renewal; the task is free again in %v (lock.ttl), so that the two runs never overlap.", task, t.Owner, t.LockLeftSeconds, ttl)
	if !e.confirm(question, yes) {
		return ExitFailure
	}
	revoked, err := ins.ForceRelease(ctx, task, ttl)
	if err != nil {
		fmt.Fprintf(e.stderr, "beat status: release %s: %v\n", task, err)
		return ExitFailure
	}
	if revoked {
		fmt.Fprintf(e.stdout, "%s: lock revoked; the task is free again in %v\n", task, ttl)
	} else {
		fmt.Fprintf(e.stdout, "%s: its lock was already free\n", task)
	}
	return ExitOK
}

func (e *env) pruneStale(ctx context.Context, ins lock.Inspector, rep status.Report, minAge time.Duration, yes bool) int {
	if len(rep.Stale) == 0 {
		fmt.Fprintln(e.stdout, "no stale records: every task in the lock store is in the schedule")
		return ExitOK
	}
	names := make([]string, len(rep.Stale))
	for i, t := range rep.Stale {
		names[i] = t.Name
	}
	question := fmt.Sprintf("Remove the records of %s, which the schedule no longer has? Do it once no replica runs an older schedule that still has them.", strings.Join(names, ", "))
	if !e.confirm(question, yes) {
		return ExitFailure
	}
	code := ExitOK
	for _, name := range names {
		switch err := ins.Forget(ctx, name, minAge); {
		case errors.Is(err, lock.ErrHeld):
			fmt.Fprintf(e.stderr, "%s: kept: its lock is held (a replica still runs it); try again once it is free\n", name)
			code = ExitFailure
		case errors.Is(err, lock.ErrRecent):
			fmt.Fprintf(e.stderr, "%s: kept: %v; a replica may still run an older schedule that has it (see --min-age)\n", name, errors.Unwrap(err))
			code = ExitFailure
		case err != nil:
			fmt.Fprintf(e.stderr, "%s: %v\n", name, err)
			code = ExitFailure
		default:
			fmt.Fprintf(e.stdout, "%s: removed\n", name)
		}
	}
	return code
}

// confirm asks question on stderr and reads the answer from stdin; yes
// answers for the user.
func (e *env) confirm(question string, yes bool) bool {
	if yes {
		return true
	}
	fmt.Fprintf(e.stderr, "%s [y/N] ", question)
	answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true
	}
	fmt.Fprintln(e.stderr, "not done (answer y to go ahead, or pass --yes)")
	return false
}
