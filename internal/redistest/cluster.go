package redistest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of one test: masters without replicas, each a
// Server in a directory of its own, killed when the test ends.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts masters cluster-enabled servers (with the extra
// arguments args), joins them with redis-cli --cluster create, which
// spreads the 16384 slots over them, and waits until every node reports
// cluster_state:ok. It skips (fails, if required: see Client) when
// redis-server or redis-cli is not installed.
func StartCluster(t testing.TB, dir string, masters int, args ...string) *Cluster {
	t.Helper()
	need(t, "redis-server")
	need(t, "redis-cli")
	c := &Cluster{}
	for i := range masters {
		nodeDir := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			t.Fatal(err)
		}
		// The node's config file lives in its own directory (--dir), so
		// its name need not carry the port.
		nodeArgs := append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000"}, args...)
		c.Nodes = append(c.Nodes, startServer(t, &Server{args: nodeArgs, log: filepath.Join(nodeDir, "redis.log"), bus: true}))
	}
	create := append(append([]string{"--cluster", "create"}, c.Addrs()...), "--cluster-replicas", "0", "--cluster-yes")
	ctx := context.Background()
	createCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(createCtx, "redis-cli", create...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out.String())
	}
	for _, n := range c.Nodes {
		nc := n.Client()
		var info string
		var err error
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			info, err = nc.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", masters)) {
				break
			}
			if time.Now().After(deadline) {
				nc.Close()
				t.Fatalf("node %s: the cluster is not ok 20s after it was created: %v\n%s", n.Addr(), err, info)
			}
		}
		nc.Close()
	}
	return c
}

// Addrs are the nodes' host:port.
func (c *Cluster) Addrs() []string {
	var addrs []string
	for _, n := range c.Nodes {
		addrs = append(addrs, n.Addr())
	}
	return addrs
}

// Client returns a new client of the cluster; the caller closes it.
func (c *Cluster) Client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true})
}

// NodeFor returns the node that serves key's slot, and another one, which
// answers MOVED for it.
func (c *Cluster) NodeFor(t testing.TB, key string) (owner, other *Server) {
	t.Helper()
	for _, n := range c.Nodes {
		nc := n.Client()
		err := nc.Get(context.Background(), key).Err()
		nc.Close()
		switch _, moved := redis.IsMovedError(err); {
		case moved:
			if other == nil {
				other = n
			}
		case err == nil || err == redis.Nil:
			owner = n
		default:
			t.Fatalf("GET %s on node %s: %v", key, n.Addr(), err)
		}
	}
	if owner == nil || other == nil {
		t.Fatalf("no node of %v, or every node, serves the slot of %q", c.Addrs(), key)
	}
	return owner, other
}
