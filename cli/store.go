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
// that refuses beat's credentials or TLS is an error (lockstore.ErrConfig);
// one that does not answer yet is not, since every claim retries, and is
// logged.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*lockstore.Store, error) {
	if cfg.Lock.Backend == "redis" {
		// Process-wide, like the flag and signal handling of Main.
		redis.SetLogger(redisLogger{log})
	}
	s, err := lockstore.Open(cfg.Lock)
	if err != nil {
		return nil, err
	}
	switch err := lockstore.Check(ctx, s, cfg.Lock, log); {
	case errors.Is(err, lockstore.ErrConfig):
		s.Close()
		return nil, err
	case err != nil:
		log.Warn("the lock store does not answer yet; each claim will retry, and ticks it cannot claim before their starting deadline are skipped", "err", err)
	}
	return s, nil
}
