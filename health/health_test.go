package health_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beatlock/beat/clock/clocktest"
	"github.com/beatlock/beat/health"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/memlock"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// down is a store that does not answer.
type down struct{}

func (down) Epoch(context.Context) (time.Time, time.Time, error) {
	return time.Time{}, time.Time{}, errors.New("dial tcp 127.0.0.1:6379: connection refused")
}

type lag time.Duration

func (l lag) LoopLag() time.Duration { return time.Duration(l) }

func TestReady(t *testing.T) {
	tests := []struct {
		name      string
		storeSkew time.Duration // the store's clock minus ours
		down      bool
		wantReady bool
		wantLine  string
	}{
		{"store answers, clocks agree", 0, false, true, "store: answers"},
		{"store 1.9s behind", -1900 * time.Millisecond, false, true, "clock skew 1.9s, within 2s"},
		{"store 2.5s ahead", 2500 * time.Millisecond, false, false, "clock is 2.5s behind the lock store's, more than lock.max_clock_skew (2s)"},
		{"store down", 0, true, false, "store: the lock store does not answer: dial tcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktest.New(t0)
			var store health.Store = memlock.New(memlock.WithClock(func() time.Time { return clk.Now().Add(tt.storeSkew) }))
			if tt.down {
				store = down{}
			}
			var upSeen []bool
			k := health.New(store, lag(0), 2*time.Second, health.WithClock(clk), health.WithLogger(slog.New(slog.DiscardHandler)),
				health.WithObserver(func(up bool, _ time.Duration) { upSeen = append(upSeen, up) }))
			if ok, lines := k.Ready(); ok || lines[0] != "store: not checked yet" {
				t.Errorf("before a check: %v %q; want not ready", ok, lines)
			}
			k.Check(context.Background())
			ok, lines := k.Ready()
			if ok != tt.wantReady || !strings.Contains(strings.Join(lines, "\n"), tt.wantLine) {
				t.Errorf("Ready() = %v\n%s\nwant %v with %q", ok, strings.Join(lines, "\n"), tt.wantReady, tt.wantLine)
			}
			if len(upSeen) != 1 || upSeen[0] == tt.down {
				t.Errorf("observer saw up = %v; want [%v]", upSeen, !tt.down)
			}
		})
	}
}

func TestReadyLogsChanges(t *testing.T) {
	clk := clocktest.New(t0)
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	store := &switchable{Store: memlock.New(memlock.WithClock(clk.Now))}
	k := health.New(store, lag(0), time.Second, health.WithClock(clk), health.WithLogger(log))
	ctx := context.Background()
	store.down = true
	for range 3 { // down: logged once, not at every check
		k.Check(ctx)
		clk.Advance(5 * time.Second)
	}
	clk.Advance(time.Minute) // still down a minute later: said again
	k.Check(ctx)
	store.down = false
	k.Check(ctx)
	k.Check(ctx)
	got := buf.String()
	if n := strings.Count(got, "not ready"); n != 2 {
		t.Errorf("logged 'not ready' %d times; want 2 (at the change, then a minute later):\n%s", n, got)
	}
	if n := strings.Count(got, "ready: the lock store answers"); n != 1 {
		t.Errorf("logged 'ready' %d times; want 1:\n%s", n, got)
	}
}

// refused is a store that answers and refuses beat as configured (tables
// an older beat made, a wrong password).
type refused struct{}

func (refused) Epoch(context.Context) (time.Time, time.Time, error) {
	return time.Time{}, time.Time{}, fmt.Errorf("%w: beat's tables lack columns this version of beat uses: run `beat migrate`", lock.ErrRefused)
}

// TestReadyWhenRefused: a store that refuses beat makes the replica unready
// with the setting to fix, not saying that the store does not answer.
func TestReadyWhenRefused(t *testing.T) {
	k := health.New(refused{}, lag(0), time.Second, health.WithLogger(slog.New(slog.DiscardHandler)))
	k.Check(context.Background())
	ok, lines := k.Ready()
	text := strings.Join(lines, "\n")
	if ok || !strings.Contains(text, "run `beat migrate`") || strings.Contains(text, "does not answer") {
		t.Errorf("Ready() = %v\n%s\nwant not ready, naming the fix, not saying the store does not answer", ok, text)
	}
}

func TestReadyShowsReload(t *testing.T) {
	k := health.New(memlock.New(), lag(0), time.Second)
	k.Check(context.Background())
	k.SetReload(health.Reload{At: t0, Err: errors.New("s.yaml:3: unknown field"), RestartRequired: []string{"lock.ttl"}})
	ok, lines := k.Ready()
	text := strings.Join(lines, "\n")
	if !ok {
		t.Errorf("a rejected reload made the replica unready:\n%s", text)
	}
	for _, want := range []string{"reload: rejected at 2026-12-01T12:00:00Z; the schedule loaded before keeps running: s.yaml:3: unknown field", "restart required: [lock.ttl]"} {
		if !strings.Contains(text, want) {
			t.Errorf("details lack %q:\n%s", want, text)
		}
	}
}

func TestLive(t *testing.T) {
	tests := []struct {
		lag  time.Duration
		want bool
	}{{0, true}, {29 * time.Second, true}, {30 * time.Second, false}, {time.Hour, false}}
	for _, tt := range tests {
		k := health.New(memlock.New(), lag(tt.lag), time.Second)
		if ok, detail := k.Live(); ok != tt.want {
			t.Errorf("lag %v: Live() = %v (%s); want %v", tt.lag, ok, detail, tt.want)
		}
	}
}

type switchable struct {
	health.Store
	down bool
}

func (s *switchable) Epoch(ctx context.Context) (time.Time, time.Time, error) {
	if s.down {
		return down{}.Epoch(ctx)
	}
	return s.Store.Epoch(ctx)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
