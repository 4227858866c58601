package status_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/memlock"
	"github.com/beatlock/beat/status"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const file = `tasks:
  - {name: held, schedule: "@every 1m", task: log}
  - {name: ran, schedule: "@hourly", task: log}
  - {name: idle, schedule: "@daily", task: log, suspend: true}
`

func TestBuild(t *testing.T) {
	ctx := context.Background()
	now := t0
	store := memlock.New(memlock.WithClock(func() time.Time { return now }))
	cfg, err := config.Parse("s.yaml", []byte(file), config.WithLookupEnv(func(string) (string, bool) { return "", false }))
	if err != nil {
		t.Fatal(err)
	}
	claim := func(task, owner string, tick time.Time) lock.Lease {
		res, err := store.Claim(ctx, lock.ClaimRequest{Task: task, Tick: tick, Owner: owner, TTL: 30 * time.Second})
		if err != nil || res.Outcome != lock.Claimed {
			t.Fatalf("claim %s: %v %v", task, res.Outcome, err)
		}
		return res.Lease
	}
	now = t0.Add(time.Second)
	held := claim("held", "pod-a/0123456789ab", t0)
	ran := claim("ran", "pod-b/ba9876543210", t0)
	gone := claim("gone", "pod-c/aaaaaaaaaaaa", t0)
	now = t0.Add(3 * time.Second)
	if _, err := store.ReleaseLease(ctx, ran, &lock.RunRecord{Tick: t0, Result: lock.RunFailed, Duration: 1500 * time.Millisecond, Error: "exit 3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReleaseLease(ctx, gone, &lock.RunRecord{Tick: t0, Result: lock.RunSucceeded}); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(10 * time.Second)

	rep, err := status.Build(ctx, cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Tasks) != 3 || len(rep.Stale) != 1 || rep.Stale[0].Name != "gone" {
		t.Fatalf("tasks %+v stale %+v; want 3 tasks and gone stale", rep.Tasks, rep.Stale)
	}
	h, _ := rep.Find("held")
	if h.Holder != "pod-a" || h.Owner != held.Owner || h.LockLeftSeconds != 21 || h.FencingToken != held.Token ||
		h.LastClaimed == nil || !h.LastClaimed.Equal(t0) || h.Next == nil || !h.Next.Equal(t0.Add(time.Minute)) || h.LastRun != nil {
		t.Errorf("held: %+v", h)
	}
	r, _ := rep.Find("ran")
	if r.Holder != "" || r.LastRun == nil || r.LastRun.Result != "failed" || r.LastRun.DurationSeconds != 1.5 ||
		r.LastRun.Instance != "pod-b" || !r.LastRun.Ended.Equal(t0.Add(3*time.Second)) || r.LastRun.Error != "exit 3" {
		t.Errorf("ran: %+v, last run %+v", r, r.LastRun)
	}
	if i, _ := rep.Find("idle"); !i.Suspended || i.Next != nil || i.LastClaimed != nil {
		t.Errorf("idle: %+v", i)
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"held", "pod-a", "21s", "failed 2026-12-01T12:00:00Z", "1.5s", "suspended",
		"STALE", "gone", "ran: last run failed: exit 3"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back status.Report
	if err := json.Unmarshal(js, &back); err != nil || len(back.Tasks) != 3 || back.Tasks[1].LastRun.DurationSeconds != 1.5 {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}
}

func TestInstance(t *testing.T) {
	for owner, want := range map[string]string{"pod-a/0123": "pod-a", "a/b/c": "a/b", "plain": "plain", "/x": "/x"} {
		if got := status.Instance(owner); got != want {
			t.Errorf("Instance(%q) = %q; want %q", owner, got, want)
		}
	}
}

// A record the store cannot read is shown as such, and what the store
// holds is never sent to the terminal as escape sequences.
func TestWriteTextUnreadableAndEscapes(t *testing.T) {
	rep := status.Report{Backend: "redis", StoreTime: t0, Tasks: []status.Task{
		{Name: "bad", Schedule: "@hourly", RecordError: `key "{p}:state:bad" field "tick": "junk" is not an integer`},
		{Name: "odd", Schedule: "@hourly", LastRun: &status.Run{Tick: t0, Result: "\x1b[31mfailed", Instance: "pod\x07", Error: "boom\x1b[2J"}},
	}}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("the text holds control characters: %q", out)
	}
	for _, want := range []string{"unreadable (below)", `bad: the lock store's record cannot be read: key "{p}:state:bad" field "tick"`, `\x1b[31mfailed`, `odd: last run \x1b[31mfailed: boom\x1b[2J`} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
}
