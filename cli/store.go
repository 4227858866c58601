package cli

import (
	"context"
	"errors"
	"log/slog"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/lockstore"
	"github.com/redis/go-redis/v9"
)

// openStore opens the configured lock store and checks it once: a store
// that refuses beat's credentials or TLS, or whose tables `beat migrate`
// has yet to create or bring up to date, is an error (lockstore.ErrConfig);
// one that does not answer yet is not, since every claim retries.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*lockstore.Store, error) {
	if cfg.Lock.Backend == "redis" {
		// Process-wide, like the flag and signal handling of Main.
		redis.SetLogger(redisLogger{log})
	}
	s, err := lockstore.Open(cfg.Lock)
	if err != nil {
		return nil, err
	}
	// A store that does not answer is said by whoever uses it next: the
	// scheduler's first call, or beat status's.
	if err := lockstore.Check(ctx, s, cfg.Lock, log); errors.Is(err, lockstore.ErrConfig) {
		s.Close()
		return nil, err
	}
	return s, nil
}
