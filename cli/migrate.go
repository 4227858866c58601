package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/beatlock/beat/lockstore"
)

// migrate creates the lock store's schema (PostgreSQL's tables); it is
// idempotent, and run once per deployment, never silently by `run`.
func (e *env) migrate(ctx context.Context, args []string) int {
	fs, path := e.flags("migrate")
	if ok, code := e.parse(fs, args); !ok {
		return code
	}
	cfg, ok := e.load(*path)
	if !ok {
		return ExitFailure
	}
	if cfg.Lock.Backend != "postgres" {
		fmt.Fprintf(e.stdout, "lock backend %s: nothing to migrate\n", cfg.Lock.Backend)
		return ExitOK
	}
	store, err := lockstore.Open(cfg.Lock)
	if err != nil {
		fmt.Fprintf(e.stderr, "beat migrate: %v\n", err)
		return ExitFailure
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := store.Migrate(ctx); err != nil {
		fmt.Fprintf(e.stderr, "beat migrate: %v\n", err)
		return ExitFailure
	}
	fmt.Fprintf(e.stdout, "lock backend postgres: tables %s, %s_tasks and %s_meta are ready\n", cfg.Lock.Postgres.Table, cfg.Lock.Postgres.Table, cfg.Lock.Postgres.Table)
	return ExitOK
}
