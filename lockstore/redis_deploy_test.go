package lockstore_test

// Redis as deployed: a Cluster, TLS (with and without client
// certificates), an ACL user limited to the deployment's keys (on a server
// that requires client certificates too, as production ones do: one suite
// for both), Sentinel with a failover, and min_replicas (WAIT). Each test
// starts the servers it needs on free ports under its own temporary
// directory and kills them when it ends; each skips when redis-server is
// not installed, unless BEAT_TEST_REDIS_REQUIRED=1 (then it fails). They
// run in parallel with each other: they share nothing.

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/beatlock/beat/config"
	"github.com/beatlock/beat/internal/redistest"
	"github.com/beatlock/beat/lock"
	"github.com/beatlock/beat/lock/locktest"
	"github.com/beatlock/beat/lock/redislock"
	"github.com/beatlock/beat/lockstore"
)

// suiteTTL is the lock ttl of the conformance suite on these servers, as
// on the shared server of the redislock tests: the suite checks a lock it
// expects to be held with 2/5 of it (400ms) to spare, for the stalls of a
// loaded machine under -race. Its rows sleep for about 23 ttls in all, and
// the sleeping rows of every suite here share the two slots of -parallel
// on two cores: three suites (Cluster; TLS; TLS with a client certificate
// and an ACL user) make most of the file's wall time, about 50s under
// -race. A shorter ttl saves time but not enough margin: at 500ms a row
// under -race on a loaded machine saw its lock expire early.
const suiteTTL = time.Second

// aclRules are the rules of beat's Redis user, after "ACL SETUSER <user> on
// ><password> resetkeys ~<key_prefix>* resetchannels": every command beat
// sends, and every command its scripts call (Redis checks those against the
// user's rules too), and nothing else.
//
//   - evalsha, eval: each operation is a script; EVALSHA first, EVAL when
//     the server does not have it cached yet (no SCRIPT LOAD)
//   - get: Owner and IsLocked; info: the check at start, and the claim
//     script's run_id (INFO server), with which beat tells a failed-over or
//     restarted server; scan: beat status (the task records); wait:
//     lock.redis.min_replicas
//   - in scripts: time, get, set, del, exists, pexpire, pttl, type, hget,
//     hmget, hset, hdel, hgetall, zadd, zrem, zrangebyscore,
//     zremrangebyscore
//
// go-redis's HELLO and AUTH need no rule; its CLIENT SETINFO is refused
// and ignored.
const aclRules = "-@all +evalsha +eval +get +info +scan +wait " +
	"+time +set +del +exists +pexpire +pttl +type +hget +hmget +hset +hdel +hgetall " +
	"+zadd +zrem +zrangebyscore +zremrangebyscore"

// aclSetUser is the command that makes name a user with password "pw"
// limited to the keys of prefix and the commands of aclRules, and extra.
func aclSetUser(name, prefix string, extra ...string) []any {
	args := []any{"ACL", "SETUSER", name, "on", ">pw", "resetkeys", "~" + prefix + "*", "resetchannels"}
	for _, r := range append(strings.Fields(aclRules), extra...) {
		args = append(args, r)
	}
	return args
}

// newPrefix is a key prefix of its own, with a hash tag: different
// prefixes fall in different slots of a Cluster.
func newPrefix() string { return "{beat-" + uuid.NewString()[:13] + "}:" }

// openStore opens the store l names, closed when t ends.
func openStore(t testing.TB, l config.Lock) *lockstore.Store {
	t.Helper()
	store, err := lockstore.Open(l)
	if err != nil {
		t.Fatalf("lockstore.Open: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// check is lockstore.Check of a store l names.
func check(t testing.TB, l config.Lock) error {
	t.Helper()
	return lockstore.Check(context.Background(), openStore(t, l), l, slog.New(slog.DiscardHandler))
}

// backdate sets the epoch of prefix's keys 3h back, as begun by the server
// c talks to (the master of the prefix's slot), so that the suite has past
// ticks to claim.
func backdate(t testing.TB, c redis.Cmdable, prefix string) time.Time {
	t.Helper()
	ctx := context.Background()
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	epoch := now.Add(-3 * time.Hour).Truncate(time.Millisecond)
	if err := c.Set(ctx, prefix+"epoch", epoch.UnixMilli(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, prefix+"epoch:server", runID(t, c), 0).Err(); err != nil {
		t.Fatal(err)
	}
	return epoch
}

// runID is the run_id of the server c talks to.
func runID(t testing.TB, c redis.Cmdable) string {
	t.Helper()
	info, err := c.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if id := infoField(info, "run_id"); id != "" {
		return id
	}
	t.Fatalf("INFO server has no run_id:\n%s", info)
	return ""
}

// infoField is the value of field in an INFO reply, "" if absent.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// conformance runs the lock suite on stores that lockstore.Open makes
// from lockFor(prefix), each with a prefix of its own; admin returns a
// client, with every right, of the server that holds prefix's keys.
func conformance(t *testing.T, lockFor func(t *testing.T, prefix string) config.Lock, admin func(t *testing.T, prefix string) redis.Cmdable) {
	locktest.Run(t, locktest.Harness{
		New: func(t *testing.T) (lock.Store, func(time.Duration)) {
			prefix := newPrefix()
			backdate(t, admin(t, prefix), prefix)
			return openStore(t, lockFor(t, prefix)).Store, time.Sleep
		},
		TTL: suiteTTL,
	})
}

// wantConfig checks that err is a configuration error saying want.
func wantConfig(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, lockstore.ErrConfig) || !strings.Contains(err.Error(), want) {
		t.Errorf("Check: %v; want a configuration error saying %q", err, want)
	}
}

func subdir(t testing.TB, dir, name string) string {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRedisCluster: the suite passes on a Redis Cluster of three masters
// through mode cluster, whatever node each prefix's slot falls on; a
// single-node client pointed at a node that does not serve the prefix's
// slot is refused with MOVED, which Check names as lock.redis.mode.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t, t.TempDir(), 3)
	admin := cluster.Client()
	t.Cleanup(func() { admin.Close() })
	clusterLock := func(prefix string) config.Lock {
		return config.Lock{Backend: "redis", TTL: 30 * time.Second,
			Redis: config.Redis{Addrs: cluster.Addrs(), Mode: config.ModeCluster, KeyPrefix: prefix}}
	}
	master := func(t *testing.T, prefix string) redis.Cmdable {
		node, err := admin.MasterForKey(context.Background(), prefix)
		if err != nil {
			t.Fatal(err)
		}
		return node
	}

	t.Run("conformance", func(t *testing.T) {
		conformance(t, func(t *testing.T, prefix string) config.Lock { return clusterLock(prefix) }, master)
	})
	t.Run("check", func(t *testing.T) {
		if err := check(t, clusterLock(newPrefix())); err != nil {
			t.Errorf("Check: %v; want nil", err)
		}
	})
	t.Run("single-node client on another node", func(t *testing.T) {
		prefix := newPrefix()
		_, other := cluster.NodeFor(t, prefix+"epoch")
		l := config.Lock{Backend: "redis", TTL: 30 * time.Second,
			Redis: config.Redis{URL: other.URL(), Mode: config.ModeSingle, KeyPrefix: prefix}}
		wantConfig(t, check(t, l), "set lock.redis.mode: cluster")
	})
	t.Run("ACL user", func(t *testing.T) {
		// On a Cluster, the user also needs CLUSTER SLOTS, with which the
		// client learns which node serves which slot, and COMMAND, with
		// which it learns where each command's keys are (without it, it
		// logs each time it asks); ACL users are per node.
		prefix := newPrefix()
		for _, n := range cluster.Nodes {
			c := n.Client()
			err := c.Do(context.Background(), aclSetUser("beat", prefix, "+cluster|slots", "+command")...).Err()
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		epoch := backdate(t, master(t, prefix), prefix)
		l := clusterLock(prefix)
		l.Redis.Username, l.Redis.Password = "beat", "pw"
		var logs strings.Builder
		store := openStore(t, l)
		if err := lockstore.Check(context.Background(), store, l, slog.New(slog.NewTextHandler(&logs, nil))); err != nil || logs.Len() > 0 {
			t.Fatalf("Check: %v, logged %q; want nil and nothing", err, logs.String())
		}
		res, err := store.Claim(context.Background(), lock.ClaimRequest{Task: "t", Tick: epoch.Add(time.Minute), Owner: "a", TTL: l.TTL, MaxSkew: time.Second})
		if err != nil || res.Outcome != lock.Claimed {
			t.Fatalf("Claim = %v, %v; want claimed", res.Outcome, err)
		}
		if owner, ok, err := store.Owner(context.Background(), "t"); owner != "a" || !ok || err != nil {
			t.Errorf("Owner = %q, %v, %v; want a", owner, ok, err)
		}
		if recs, _, err := store.Inspector.Tasks(context.Background()); err != nil || len(recs) != 1 {
			t.Errorf("Tasks = %v, %v; want the one task", recs, err)
		}
	})
	t.Run("min_replicas waits on the slot's master", func(t *testing.T) {
		// These masters have no replicas: the claim is made on the master
		// of its slot (a wrong node would answer MOVED) and WAIT finds no
		// replica.
		prefix := newPrefix()
		epoch := backdate(t, master(t, prefix), prefix)
		l := clusterLock(prefix)
		l.TTL, l.Redis.MinReplicas = time.Second, 1
		store := openStore(t, l)
		req := lock.ClaimRequest{Task: "t", Tick: epoch.Add(time.Minute), Owner: "a", TTL: l.TTL, Session: "s", MaxSkew: time.Second}
		_, err := store.Claim(context.Background(), req)
		if !errors.Is(err, redislock.ErrNotReplicated) || !strings.Contains(err.Error(), "0 of 1 replicas") {
			t.Fatalf("Claim: %v; want ErrNotReplicated, 0 of 1 replicas", err)
		}
		if owner, ok, err := store.Owner(context.Background(), "t"); owner != "a" || !ok || err != nil {
			t.Errorf("Owner = %q, %v, %v; want the claim held by a on the master", owner, ok, err)
		}
	})
}

// TestRedisTLS: the suite passes on a TLS-only server through rediss://
// with the CA in tls.ca_file (TestRedisACL runs it with a client
// certificate); Check names the setting to fix when TLS does not fit.
func TestRedisTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certs := redistest.GenerateCerts(t, dir)
	serverOnly := redistest.StartTLSServer(t, subdir(t, dir, "server-only"), certs, false)
	mutual := redistest.StartTLSServer(t, subdir(t, dir, "mutual"), certs, true)
	plain := redistest.StartServer(t, subdir(t, dir, "plain"))
	tlsLock := func(url string, tls config.TLS, prefix string) config.Lock {
		return config.Lock{Backend: "redis", TTL: 30 * time.Second,
			Redis: config.Redis{URL: url, Mode: config.ModeSingle, KeyPrefix: prefix, TLS: tls}}
	}
	caOnly := config.TLS{Enabled: true, CAFile: certs.CAFile}
	withCert := config.TLS{Enabled: true, CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}
	admin := func(srv *redistest.Server) func(t *testing.T, prefix string) redis.Cmdable {
		c := srv.Client()
		t.Cleanup(func() { c.Close() })
		return func(*testing.T, string) redis.Cmdable { return c }
	}

	t.Run("conformance, server certificate", func(t *testing.T) {
		t.Parallel()
		conformance(t, func(t *testing.T, prefix string) config.Lock { return tlsLock(serverOnly.URL(), caOnly, prefix) }, admin(serverOnly))
	})

	t.Run("check", func(t *testing.T) {
		t.Parallel()
		otherCA := config.TLS{Enabled: true, CAFile: certs.OtherCAFile}
		wrongName := config.TLS{Enabled: true, CAFile: certs.CAFile, ServerName: "redis.example.com"}
		tests := []struct {
			name       string
			url        string
			tls        config.TLS
			wantConfig string // the ErrConfig's text; "" for nil
			wantDown   bool   // an error that is no configuration error: beat starts and retries
		}{
			{name: "CA", url: serverOnly.URL(), tls: caOnly},
			{name: "CA and client certificate", url: mutual.URL(), tls: withCert},
			{name: "server_name given", url: serverOnly.URL(), tls: config.TLS{Enabled: true, CAFile: certs.CAFile, ServerName: "localhost"}},
			{name: "unknown CA", url: serverOnly.URL(), tls: otherCA, wantConfig: "check lock.redis.tls.ca_file"},
			{name: "wrong server_name", url: serverOnly.URL(), tls: wrongName, wantConfig: "lock.redis.tls.server_name"},
			// The server's alert reaches the client as a *net.OpError
			// "remote error" around crypto/tls's unexported alert type.
			{name: "client certificate required, none given", url: mutual.URL(), tls: caOnly, wantConfig: "lock.redis.tls.cert_file and key_file"},
			// A plain server waits for a line that a TLS ClientHello never
			// ends, and a TLS server drops a connection that does not
			// begin with a handshake without a word: both look like a
			// server that does not answer.
			{name: "TLS client, plain server", url: "rediss://" + plain.Addr() + "/0", tls: caOnly, wantDown: true},
			{name: "plain client, TLS server", url: "redis://" + serverOnly.Addr() + "/0", wantDown: true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// Check gives up after 5s; a server that never answers
				// need not take that long here.
				wait := 3 * time.Second
				if tt.wantDown {
					wait = time.Second
				}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				l := tlsLock(tt.url, tt.tls, newPrefix())
				err := lockstore.Check(ctx, openStore(t, l), l, slog.New(slog.DiscardHandler))
				t.Logf("Check: %v", err)
				switch {
				case tt.wantConfig != "":
					wantConfig(t, err, tt.wantConfig)
				case tt.wantDown:
					if err == nil || errors.Is(err, lockstore.ErrConfig) {
						t.Errorf("Check: %v; want an error that is not a configuration error", err)
					}
				case err != nil:
					t.Errorf("Check: %v; want nil", err)
				}
			})
		}
	})
}

// TestRedisACL: the suite passes for a Redis user that may run only the
// commands of aclRules on only its deployment's keys, on a TLS server that
// requires a client certificate, which beat has in tls.cert_file and
// key_file; with another key prefix, Check refuses the user as a
// configuration error.
func TestRedisACL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certs := redistest.GenerateCerts(t, dir)
	srv := redistest.StartTLSServer(t, dir, certs, true, "--requirepass", "admin")
	admin := srv.Client(func(o *redis.Options) { o.Password = "admin" })
	t.Cleanup(func() { admin.Close() })
	ctx := context.Background()
	// user makes a user limited to prefix's keys, as the README says.
	var users atomic.Int64
	user := func(t *testing.T, prefix string) string {
		t.Helper()
		name := "beat" + strconv.FormatInt(users.Add(1), 10)
		if err := admin.Do(ctx, aclSetUser(name, prefix)...).Err(); err != nil {
			t.Fatal(err)
		}
		return name
	}
	userLock := func(name, prefix string) config.Lock {
		return config.Lock{Backend: "redis", TTL: 30 * time.Second,
			Redis: config.Redis{URL: srv.URL(), Mode: config.ModeSingle, KeyPrefix: prefix, Username: name, Password: "pw",
				TLS: config.TLS{Enabled: true, CAFile: certs.CAFile, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}}}
	}

	t.Run("conformance, client certificate and ACL user", func(t *testing.T) {
		conformance(t, func(t *testing.T, prefix string) config.Lock { return userLock(user(t, prefix), prefix) },
			func(*testing.T, string) redis.Cmdable { return admin })
	})
	t.Run("check", func(t *testing.T) {
		prefix := newPrefix()
		name := user(t, prefix)
		var logs strings.Builder
		l := userLock(name, prefix)
		if err := lockstore.Check(ctx, openStore(t, l), l, slog.New(slog.NewTextHandler(&logs, nil))); err != nil || logs.Len() > 0 {
			t.Errorf("Check: %v, logged %q; want nil and nothing", err, logs.String())
		}
		wantConfig(t, check(t, userLock(name, newPrefix())), "the Redis user may not run what beat needs")
	})
	t.Run("min_replicas", func(t *testing.T) {
		// WAIT is among the rules: with no replica, the claim is refused as
		// not replicated, not as not permitted.
		prefix := newPrefix()
		epoch := backdate(t, admin, prefix)
		l := userLock(user(t, prefix), prefix)
		l.TTL, l.Redis.MinReplicas = time.Second, 1
		_, err := openStore(t, l).Claim(ctx, lock.ClaimRequest{Task: "t", Tick: epoch.Add(time.Minute), Owner: "a", TTL: l.TTL, MaxSkew: time.Second})
		if !errors.Is(err, redislock.ErrNotReplicated) {
			t.Errorf("Claim: %v; want ErrNotReplicated", err)
		}
	})
}

// startReplicated starts a master and one replica of it, and waits until
// the replica is in sync.
func startReplicated(t *testing.T, dir string) (master, replica *redistest.Server) {
	t.Helper()
	// A full sync starts at once, not after 5s in case more replicas come.
	master = redistest.StartServer(t, subdir(t, dir, "master"), "--repl-diskless-sync-delay", "0")
	replica = redistest.StartServer(t, subdir(t, dir, "replica"), "--replicaof", "127.0.0.1", strconv.Itoa(master.Port()))
	waitReplica(t, master, replica)
	return master, replica
}

// waitReplica waits until replica is in sync with master and acknowledges
// writes: after a full sync over the network, a master streams writes to
// the replica only from the replica's first acknowledgement, up to a
// second later, and WAIT counts it only then.
func waitReplica(t *testing.T, master, replica *redistest.Server) {
	t.Helper()
	mc, rc := master.Client(), replica.Client()
	defer mc.Close()
	defer rc.Close()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err1 := mc.Info(ctx, "replication").Result()
		r, err2 := rc.Info(ctx, "replication").Result()
		if err1 == nil && err2 == nil && infoField(r, "master_link_status") == "up" &&
			strings.Contains(infoField(m, "slave0"), "state=online") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica is not in sync after 15s: %v, %v\nmaster:\n%s\nreplica:\n%s", err1, err2, m, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn := mc.Conn() // WAIT counts the writes of its own connection
	defer conn.Close()
	if err := conn.Set(ctx, "replica-probe", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Wait(ctx, 1, time.Until(deadline)).Result(); n != 1 || err != nil {
		t.Fatalf("WAIT 1 after the replica's sync = %d, %v", n, err)
	}
}

// commandCalls reads INFO commandstats: the calls of each command.
func commandCalls(t *testing.T, c redis.Cmdable) map[string]int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for line := range strings.Lines(info) {
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		calls[name], _ = strconv.Atoi(strings.TrimPrefix(strings.Split(stats, ",")[0], "calls="))
	}
	return calls
}

// TestRedisMinReplicas: with min_replicas 1, a claim is returned once a
// replica holds it; with the replica gone, the claim is an error wrapping
// ErrNotReplicated after about the WAIT timeout, and the same process's
// retry, once the replica is back, gets the same lease. min_replicas 0
// sends the claim alone, without WAIT.
func TestRedisMinReplicas(t *testing.T) {
	t.Parallel()
	master, replica := startReplicated(t, t.TempDir())
	admin, rc := master.Client(), replica.Client()
	t.Cleanup(func() { admin.Close(); rc.Close() })
	ctx := context.Background()
	prefix := newPrefix()
	epoch := backdate(t, admin, prefix)
	tick := epoch.Add(time.Minute)
	l := config.Lock{Backend: "redis", TTL: 10 * time.Second, // WAIT up to 1s
		Redis: config.Redis{URL: master.URL(), Mode: config.ModeSingle, KeyPrefix: prefix, MinReplicas: 1}}
	store := openStore(t, l)
	req := func(task, owner, session string) lock.ClaimRequest {
		return lock.ClaimRequest{Task: task, Tick: tick, Owner: owner, TTL: l.TTL, Session: session, MaxSkew: time.Second}
	}
	recorded := func(c *redis.Client, task string) string {
		return c.HGet(ctx, prefix+"state:"+task, "fence").Val()
	}

	before := commandCalls(t, admin)
	res, err := store.Claim(ctx, req("a", "pod-1", "s1"))
	if err != nil || res.Outcome != lock.Claimed {
		t.Fatalf("Claim with a replica in sync = %v, %v; want claimed", res.Outcome, err)
	}
	// Read at once: WAIT returned, so the replica has applied the claim.
	if got, want := recorded(rc, "a"), strconv.FormatUint(res.Lease.Token, 10); got != want {
		t.Errorf("the replica holds token %q right after the claim; want %q", got, want)
	}
	if after := commandCalls(t, admin); after["wait"]-before["wait"] != 1 {
		t.Errorf("WAIT ran %d times for one claim; want 1", after["wait"]-before["wait"])
	}

	// The replica dies: no one acknowledges.
	replica.Kill()
	start := time.Now()
	res, err = store.Claim(ctx, req("b", "pod-1", "s1"))
	took := time.Since(start)
	if !errors.Is(err, redislock.ErrNotReplicated) || !strings.Contains(err.Error(), "0 of 1 replicas") || res != (lock.ClaimResult{}) {
		t.Fatalf("Claim without a replica = %+v, %v; want no result and ErrNotReplicated, 0 of 1 replicas", res, err)
	}
	if took < 950*time.Millisecond || took > 5*time.Second {
		t.Errorf("the unreplicated claim took %v; want about the WAIT timeout, 1s", took)
	}
	held := recorded(admin, "b")
	if held == "" {
		t.Fatal("the unreplicated claim is not on the master")
	}
	// Not an outcome, but the tick is taken: another replica of beat does
	// not get it.
	if res, err := store.Claim(ctx, req("b", "pod-2", "s2")); err != nil || res.Outcome != lock.AlreadyClaimed {
		t.Errorf("another owner's claim of the tick = %v, %v; want already-claimed", res.Outcome, err)
	}
	// A call whose deadline comes before the WAIT timeout ends its WAIT in
	// time, and says so.
	short, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
	_, err = store.Claim(short, req("b", "pod-1", "s1"))
	cancel()
	if !errors.Is(err, redislock.ErrNotReplicated) {
		t.Errorf("Claim with a 900ms deadline: %v; want ErrNotReplicated", err)
	}

	// The replica is back (empty, it syncs from the master): the retry by
	// the same process gets the lease it was not given.
	replica.Restart()
	waitReplica(t, master, replica)
	res, err = store.Claim(ctx, req("b", "pod-1", "s1"))
	if err != nil || res.Outcome != lock.Claimed || strconv.FormatUint(res.Lease.Token, 10) != held {
		t.Fatalf("the retry once the replica is back = %+v, %v; want claimed with token %s", res, err, held)
	}
	if got := recorded(rc, "b"); got != held {
		t.Errorf("the replica holds token %q after the retry; want %q", got, held)
	}

	t.Run("min_replicas 0", func(t *testing.T) {
		l0 := l
		l0.Redis.MinReplicas = 0
		store := openStore(t, l0)
		// Load the claim script into this client's path first: a server
		// without it answers NOSCRIPT, and go-redis follows with EVAL.
		if _, err := store.Claim(ctx, req("c0", "pod-1", "s1")); err != nil {
			t.Fatal(err)
		}
		before := commandCalls(t, admin)
		res, err := store.Claim(ctx, req("c", "pod-1", "s1"))
		after := commandCalls(t, admin)
		if err != nil || res.Outcome != lock.Claimed {
			t.Fatalf("Claim = %v, %v; want claimed", res.Outcome, err)
		}
		// Commands that scripts call count too: only the ones a script
		// cannot send tell how the claim was sent.
		for cmd, want := range map[string]int{"evalsha": 1, "eval": 0, "wait": 0} {
			if got := after[cmd] - before[cmd]; got != want {
				t.Errorf("a claim with min_replicas 0 ran %s %d times; want %d (one script, no WAIT)", strings.ToUpper(cmd), got, want)
			}
		}
	})
}

// TestRedisSentinel: claims go through Sentinel (mode sentinel), with
// min_replicas too, go on after the master is killed and a replica
// promoted, and the promoted
// master begins a new epoch: the ticks from before, claimed or not, are
// StoreLost, never claimed a second time.
func TestRedisSentinel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	master, replica := startReplicated(t, dir)
	const name = "mymaster"
	var sentinels []string
	for i := range 3 {
		s := redistest.StartSentinel(t, subdir(t, dir, "sentinel"+strconv.Itoa(i)), redistest.SentinelConfig{
			Master: name, MasterAddr: master.Addr(), Quorum: 2, DownAfter: time.Second, FailoverTimeout: 5 * time.Second})
		sentinels = append(sentinels, s.Addr())
	}
	waitSentinels(t, sentinels, name)

	ctx := context.Background()
	admin := master.Client()
	defer admin.Close()
	prefix := newPrefix()
	epoch := backdate(t, admin, prefix)
	oldRunID := runID(t, admin)
	l := config.Lock{Backend: "redis", TTL: 30 * time.Second,
		Redis: config.Redis{Addrs: sentinels, Mode: config.ModeSentinel, SentinelMaster: name, KeyPrefix: prefix}}
	if err := check(t, l); err != nil {
		t.Fatalf("Check: %v", err)
	}
	store := openStore(t, l)
	req := func(task string, tick time.Time, owner, session string, p lock.Policy, known time.Time) lock.ClaimRequest {
		return lock.ClaimRequest{Task: task, Tick: tick, Owner: owner, TTL: l.TTL, Policy: p, Session: session,
			MaxSkew: time.Second, KnownEpoch: known}
	}
	t1 := epoch.Add(time.Minute)
	first, err := store.Claim(ctx, req("a", t1, "pod-1", "s1", lock.Forbid, time.Time{}))
	if err != nil || first.Outcome != lock.Claimed {
		t.Fatalf("Claim through Sentinel = %v, %v; want claimed", first.Outcome, err)
	}
	// min_replicas through Sentinel: the failover client is a
	// *redis.Client whose pool dials the master Sentinel names, so the
	// claim and its WAIT share a connection to the master.
	lr := l
	lr.Redis.MinReplicas = 1
	if res, err := openStore(t, lr).Claim(ctx, req("r", t1, "pod-1", "s1", lock.Forbid, time.Time{})); err != nil || res.Outcome != lock.Claimed {
		t.Fatalf("Claim through Sentinel with min_replicas 1 = %v, %v; want claimed", res.Outcome, err)
	}
	// The replica acknowledged that claim, so it holds the first one too
	// (it applies writes in order): what follows is about the failover,
	// not about a lost write.
	rc := replica.Client()
	defer rc.Close()
	if got := rc.HGet(ctx, prefix+"state:a", "tick").Val(); got != strconv.FormatInt(t1.UnixMilli(), 10) {
		t.Fatalf("the replica's record of task a has tick %q before the failover; want the claim's", got)
	}

	master.Kill()
	// Claims fail until Sentinel promotes the replica; then the new master
	// answers. Retried as the scheduler does, bounded.
	var after lock.ClaimResult
	attempts := 0
	for deadline := time.Now().Add(30 * time.Second); ; attempts++ {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		after, err = store.Claim(cctx, req("a", t1, "pod-2", "s2", lock.Forbid, first.Epoch))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no claim succeeded within 30s of killing the master (%d attempts): %v", attempts, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the first claim after the failover succeeded after %d failed attempts", attempts)
	newRunID := runID(t, rc)
	if role := infoField(rc.Info(ctx, "replication").Val(), "role"); role != "master" {
		t.Fatalf("the replica's role after the failover is %q", role)
	}
	if after.Outcome != lock.StoreLost || !after.Epoch.After(first.Epoch) {
		t.Errorf("claim of a tick from before the failover = %v, epoch %v; want store-lost, an epoch after %v", after.Outcome, after.Epoch, first.Epoch)
	}
	if got := rc.Get(ctx, prefix+"epoch:server").Val(); got != newRunID || got == oldRunID {
		t.Errorf("epoch:server = %q after the failover; want the new master's run_id %q (was %q)", got, newRunID, oldRunID)
	}
	if got := rc.HGet(ctx, prefix+"state:a", "tick").Val(); got != strconv.FormatInt(t1.UnixMilli(), 10) {
		t.Errorf("the new master's record of task a has tick %q; want the claim from before the failover", got)
	}
	// Not the first claimant either, retrying: the tick is not handed out
	// again.
	if res, err := store.Claim(ctx, req("a", t1, "pod-1", "s1", lock.Forbid, first.Epoch)); err != nil || res.Outcome != lock.StoreLost {
		t.Errorf("retry of the first claim after the failover = %v, %v; want store-lost", res.Outcome, err)
	}
	// Ticks of the new epoch are claimed. Forbid claims wait out a ttl
	// (runs from before may still hold locks the new master does not
	// know); Allow claims take their own lock.
	t2 := after.Epoch
	if res, err := store.Claim(ctx, req("a", t2, "pod-2", "s2", lock.Forbid, after.Epoch)); err != nil || res.Outcome != lock.Busy || !res.Guarded {
		t.Errorf("Forbid claim of a new tick right after the failover = %+v, %v; want busy, guarded", res, err)
	}
	if res, err := store.Claim(ctx, req("b", t2, "pod-2", "s2", lock.Allow, after.Epoch)); err != nil || res.Outcome != lock.Claimed {
		t.Errorf("Allow claim of a new tick after the failover = %v, %v; want claimed", res.Outcome, err)
	}
	if res, err := store.Claim(ctx, req("b", t2, "pod-1", "s1", lock.Allow, after.Epoch)); err != nil || res.Outcome != lock.AlreadyClaimed {
		t.Errorf("a second claim of that tick = %v, %v; want already-claimed", res.Outcome, err)
	}
}

// waitSentinels waits until every Sentinel knows the replica and the other
// Sentinels, so that they can agree that the master is down and elect one
// of them to promote the replica.
func waitSentinels(t *testing.T, addrs []string, name string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range addrs {
		s := redis.NewSentinelClient(&redis.Options{Addr: addr})
		for {
			replicas, err1 := s.Replicas(ctx, name).Result()
			others, err2 := s.Sentinels(ctx, name).Result()
			if err1 == nil && err2 == nil && len(replicas) == 1 && len(others) == len(addrs)-1 {
				break
			}
			if time.Now().After(deadline) {
				s.Close()
				t.Fatalf("sentinel %s knows %d replicas and %d other sentinels after 20s (%v, %v); want 1 and %d",
					addr, len(replicas), len(others), err1, err2, len(addrs)-1)
			}
			time.Sleep(100 * time.Millisecond)
		}
		s.Close()
	}
}
