package cli

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/beatlock/beat/config"
)

// TestRedisStoreHonoursDeadlines: a call to the Redis store returns when its
// context is done, even when the server never answers (a partition). The
// scheduler bounds claims, renewals and releases with contexts, and go-redis
// ignores them (waiting out its own 3s read timeout, then retrying) unless
// ContextTimeoutEnabled is set.
func TestRedisStoreHonoursDeadlines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // a blackhole: accepts, reads nothing, answers nothing
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	cfg := &config.Config{Lock: config.Lock{Backend: "redis",
		Redis: config.Redis{URL: "redis://" + ln.Addr().String() + "/0", KeyPrefix: "{test}:"}}}
	store, closeStore, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := store.IsLocked(ctx, "k")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("IsLocked answered although the server never did")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("IsLocked still blocked 2s after its 100ms deadline: the Redis client ignores context deadlines")
	}
}
