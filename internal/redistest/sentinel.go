package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// SentinelConfig is what a test Sentinel monitors, and how eagerly.
type SentinelConfig struct {
	Master          string        // the name the master is known by, like "mymaster"
	MasterAddr      string        // its host:port
	Quorum          int           // Sentinels that must agree that it is down
	DownAfter       time.Duration // unanswered for this long: subjectively down
	FailoverTimeout time.Duration
}

// StartSentinel starts a Sentinel (redis-server conf --sentinel) with a
// config file of its own in dir, which it rewrites as it learns the
// replicas, the other Sentinels and failovers. Its Server answers Sentinel
// commands only; it is killed when the test ends.
func StartSentinel(t testing.TB, dir string, c SentinelConfig) *Server {
	t.Helper()
	host, port, ok := splitAddr(c.MasterAddr)
	if !ok {
		t.Fatalf("StartSentinel: master address %q is not host:port", c.MasterAddr)
	}
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s %[4]d\n"+
		"sentinel down-after-milliseconds %[1]s %[5]d\n"+
		"sentinel failover-timeout %[1]s %[6]d\n",
		c.Master, host, port, c.Quorum, c.DownAfter.Milliseconds(), c.FailoverTimeout.Milliseconds())
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return startServer(t, &Server{pre: []string{conf, "--sentinel"}, log: filepath.Join(dir, "redis.log")})
}

// splitAddr splits host:port.
func splitAddr(addr string) (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(addr)
	return host, port, err == nil && port != ""
}
