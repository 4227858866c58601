package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// counter is a go-redis hook that counts round trips and commands, and
// keeps the size of the last EVAL body sent (a script sent in full, after
// EVALSHA found it missing).
type counter struct {
	trips, cmds atomic.Int64
	evalBytes   atomic.Int64
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(1)
		if cmd.Name() == "eval" {
			if args := cmd.Args(); len(args) > 1 {
				if body, ok := args[1].(string); ok {
					c.evalBytes.Store(int64(len(body)))
				}
			}
		}
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func (c *counter) reset() { c.trips.Store(0); c.cmds.Store(0) }

// newClient is a client as beat makes one (lockstore): defaults but for
// ContextTimeoutEnabled; poolSize 0 keeps go-redis's default (10 per
// GOMAXPROCS).
func newClient(addr string, poolSize int, hook *counter) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: poolSize, ContextTimeoutEnabled: true})
	if hook != nil {
		c.AddHook(hook)
	}
	return c
}

// warm opens the pool's connections before a measurement, so that none is
// dialled during it.
func warm(ctx context.Context, c *redis.Client) error {
	n := c.Options().PoolSize
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if err := c.Ping(ctx).Err(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// flush empties the benchmark's own server; never point it at a shared one.
func flush(ctx context.Context, addr string) error {
	c := newClient(addr, 1, nil)
	defer c.Close()
	return c.FlushAll(ctx).Err()
}

// CmdStat is one command's share of a measurement in the server.
type CmdStat struct {
	Calls float64 `json:"calls"` // per tick (or per pair)
	Usec  float64 `json:"usec"`  // microseconds in the server, per tick
}

// serverStats is what INFO says of the server's work so far.
type serverStats struct {
	cpu  float64 // seconds of CPU, user and system, of the server process
	cmds map[string][2]float64
}

func readServer(ctx context.Context, c *redis.Client) (serverStats, error) {
	info, err := c.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		return serverStats{}, err
	}
	st := serverStats{cmds: map[string][2]float64{}}
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "used_cpu_user:"), strings.HasPrefix(line, "used_cpu_sys:"):
			v, _ := strconv.ParseFloat(line[strings.IndexByte(line, ':')+1:], 64)
			st.cpu += v
		case strings.HasPrefix(line, "cmdstat_"):
			name, rest, _ := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
			var calls, usec float64
			for kv := range strings.SplitSeq(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				f, _ := strconv.ParseFloat(v, 64)
				switch k {
				case "calls":
					calls = f
				case "usec":
					usec = f
				}
			}
			st.cmds[name] = [2]float64{calls, usec}
		}
	}
	return st, nil
}

// since returns the server's CPU seconds and per-command work between
// before and s, divided by per. The INFO that read before is left out.
func (s serverStats) since(before serverStats, per float64) (float64, map[string]CmdStat) {
	out := map[string]CmdStat{}
	for name, v := range s.cmds {
		b := before.cmds[name]
		calls, usec := v[0]-b[0], v[1]-b[1]
		if name == "info" {
			calls-- // the INFO that read before
		}
		if calls <= 0 {
			continue
		}
		out[name] = CmdStat{Calls: calls / per, Usec: usec / per}
	}
	return s.cpu - before.cpu, out
}

// cpuTime is this process's CPU time so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maxRSS is the most memory this process has held resident, in MB.
func maxRSS() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // kilobytes on Linux
}

// runID is the server's run_id, which beat's claims compare with the one
// that began the store's epoch.
func runID(ctx context.Context, c *redis.Client) (string, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO server has no run_id")
}

// backdate gives beat's store under prefix an epoch three hours back, as
// begun by this server, so that there are past ticks to claim.
func backdate(ctx context.Context, c *redis.Client, prefix string) error {
	now, err := c.Time(ctx).Result()
	if err != nil {
		return err
	}
	id, err := runID(ctx, c)
	if err != nil {
		return err
	}
	if err := c.Set(ctx, prefix+"epoch", now.Add(-3*time.Hour).UnixMilli(), 0).Err(); err != nil {
		return err
	}
	return c.Set(ctx, prefix+"epoch:server", id, 0).Err()
}
