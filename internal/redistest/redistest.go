// Package redistest connects tests to the real Redis server they run against.
//
// The server is BEAT_TEST_REDIS_URL (default redis://127.0.0.1:6379/0). When
// it does not answer, tests skip with a message saying so, unless
// BEAT_TEST_REDIS_REQUIRED=1 (CI sets it), where they fail.
package redistest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// DefaultURL is the server tests use when BEAT_TEST_REDIS_URL is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL returns the server's URL.
func URL() string {
	if u := os.Getenv("BEAT_TEST_REDIS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Client returns a client of the real server, closed when t ends, or skips
// (fails, if required) when no server answers.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(URL())
	if err != nil {
		t.Fatalf("BEAT_TEST_REDIS_URL=%q: %v", URL(), err)
	}
	opts.ContextTimeoutEnabled = true // as beat's own clients are made
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		msg := "no Redis server answers at " + URL() + " (" + err.Error() + "); start one, or point BEAT_TEST_REDIS_URL at one"
		if os.Getenv("BEAT_TEST_REDIS_REQUIRED") == "1" {
			t.Fatal(msg + "; BEAT_TEST_REDIS_REQUIRED=1 makes this a failure")
		}
		t.Skip(msg)
	}
	return c
}

// Prefix returns a key prefix no other test uses, with a hash tag, and
// deletes every key under it when t ends. Tests that share one server touch
// only their own keys.
func Prefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	prefix := "{beat-test-" + uuid.NewString() + "}:"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	return prefix
}
