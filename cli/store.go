package cli

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/memlock"
	"github.com/beatlock/beat/lock/redislock"
)

// openStore connects the configured lock store. A Redis server that does
// not answer yet is not an error: the scheduler retries each claim.
func openStore(cfg *config.Config) (lock.Store, func(), error) {
	switch cfg.Lock.Backend {
	case "memory":
		return memlock.New(), func() {}, nil
	case "redis":
		opts, err := redis.ParseURL(cfg.Lock.Redis.URL)
		if err != nil {
			return nil, nil, fmt.Errorf("lock.redis.url: %w", err)
		}
		// The scheduler bounds every call with a context (a renewal must
		// give up before the lease's validity runs out); go-redis ignores
		// context deadlines unless told otherwise.
		opts.ContextTimeoutEnabled = true
		client := redis.NewClient(opts)
		b := redislock.New(client, redislock.WithKeyPrefix(cfg.Lock.Redis.KeyPrefix))
		if err := b.Err(); err != nil {
			client.Close()
			return nil, nil, err
		}
		return b, func() { client.Close() }, nil
	}
	return nil, nil, fmt.Errorf("unknown lock backend %q", cfg.Lock.Backend)
}
