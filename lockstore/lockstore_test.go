package lockstore_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/internal/redistest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lockstore"
	"github.com/redis/go-redis/v9"
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
	store, err := lockstore.Open(config.Lock{Backend: "redis",
		Redis: config.Redis{URL: "redis://" + ln.Addr().String() + "/0", Mode: config.ModeSingle, KeyPrefix: "{test}:"}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

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

// TestCheck: a store that refuses beat's credentials or permissions is a
// configuration error naming the setting; one that is down is not.
func TestCheck(t *testing.T) {
	redistest.Client(t) // skips (or fails, if required) without Redis
	srv := redistest.StartServer(t, t.TempDir(), "--requirepass", "right")
	admin := srv.Client(func(o *redis.Options) { o.Password = "right" })
	defer admin.Close()
	ctx := context.Background()
	for _, acl := range [][]any{
		{"ACL", "SETUSER", "noinfo", "on", ">pw", "~{beat}:*", "+@all", "-info"},
		{"ACL", "SETUSER", "noscripts", "on", ">pw", "~{beat}:*", "+@all", "-@scripting"},
		{"ACL", "SETUSER", "otherkeys", "on", ">pw", "~{other}:*", "+@all"},
	} {
		if err := admin.Do(ctx, acl...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, user, password string
		wantConfig           string // the ErrConfig's text; "" for none
		wantLog              string
	}{
		{"right password", "", "right", "", ""},
		{"no password", "", "", "the server requires a password: set lock.redis.password", ""},
		{"wrong password", "", "wrong", "the server refused the username or password", ""},
		{"user without INFO", "noinfo", "pw", "", "the Redis user may not run INFO"},
		{"user without scripts", "noscripts", "pw", "the Redis user may not run what beat needs", ""},
		{"user for other keys", "otherkeys", "pw", "the Redis user may not run what beat needs", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := config.Lock{Backend: "redis", Redis: config.Redis{URL: srv.URL(), Mode: config.ModeSingle,
				KeyPrefix: "{beat}:", Username: tt.user, Password: tt.password}}
			store, err := lockstore.Open(l)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			var logs bytes.Buffer
			err = lockstore.Check(ctx, store, l, slog.New(slog.NewTextHandler(&logs, nil)))
			switch {
			case tt.wantConfig == "" && err != nil:
				t.Errorf("Check: %v; want nil", err)
			case tt.wantConfig != "" && (!errors.Is(err, lockstore.ErrConfig) || !strings.Contains(err.Error(), tt.wantConfig)):
				t.Errorf("Check: %v; want a configuration error saying %q", err, tt.wantConfig)
			}
			if !strings.Contains(logs.String(), tt.wantLog) || (tt.wantLog == "") != (logs.Len() == 0) {
				t.Errorf("logged %q; want %q", logs.String(), tt.wantLog)
			}
			if err != nil && strings.Contains(err.Error(), tt.password) && tt.password != "" {
				t.Errorf("the error holds the password: %v", err)
			}
			// During a run, the same refusal marks every call's error, so
			// that the scheduler says it once a minute.
			_, cerr := store.Claim(ctx, lock.ClaimRequest{Task: "t", Tick: time.Now(), Owner: "o/1", TTL: time.Second})
			if refused := errors.Is(cerr, lock.ErrRefused); refused != (tt.wantConfig != "") {
				t.Errorf("Claim: %v; lock.ErrRefused: %v, want %v", cerr, refused, tt.wantConfig != "")
			}
			if _, ok := store.Store.(lock.BatchRenewer); !ok {
				t.Fatalf("%T is not a lock.BatchRenewer: renewals would go one by one", store.Store)
			}
			_, rerr := lock.RenewBatch(ctx, store.Store, []lock.Lease{{Task: "t", Key: "t", Owner: "o/1", Token: 1}}, time.Second)
			if refused := errors.Is(rerr, lock.ErrRefused); refused != (tt.wantConfig != "") {
				t.Errorf("RenewBatch: %v; lock.ErrRefused: %v, want %v", rerr, refused, tt.wantConfig != "")
			}
		})
	}

	t.Run("server down", func(t *testing.T) {
		l := config.Lock{Backend: "redis", Redis: config.Redis{URL: "redis://127.0.0.1:1/0", Mode: config.ModeSingle, KeyPrefix: "{beat}:"}}
		store, err := lockstore.Open(l)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		err = lockstore.Check(ctx, store, l, slog.New(slog.DiscardHandler))
		if err == nil || errors.Is(err, lockstore.ErrConfig) {
			t.Errorf("Check of a server that is down: %v; want an error that is not a configuration error", err)
		}
	})
}
