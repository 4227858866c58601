package redistest

import (
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server of one test, on a loopback port of its own,
// without persistence: a restart loses every key. It is killed when the
// test ends.
type Server struct {
	t    testing.TB
	port int
	args []string
	log  string
	pre  []string    // arguments before the port's: a config file, --sentinel
	tls  *tls.Config // for a server that listens with TLS only (StartTLSServer)
	bus  bool        // a Cluster node, which also listens on port+10000

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartServer starts a server with the extra redis-server arguments args
// (like "--requirepass", "pw"), in dir, on a free port below the kernel's
// ephemeral range, so that no connection's local port can take it while
// the server is down for a restart. It skips the test (fails, if required:
// see Client) when redis-server is not installed.
func StartServer(t testing.TB, dir string, args ...string) *Server {
	t.Helper()
	return startServer(t, &Server{args: args, log: filepath.Join(dir, "redis.log")})
}

// need skips the test (fails it, if required: see Client) when the program
// is not installed.
func need(t testing.TB, program string) {
	t.Helper()
	if _, err := exec.LookPath(program); err != nil {
		msg := program + " is not installed: " + err.Error()
		if os.Getenv("BEAT_TEST_REDIS_REQUIRED") == "1" {
			t.Fatal(msg + "; BEAT_TEST_REDIS_REQUIRED=1 makes this a failure")
		}
		t.Skip(msg)
	}
}

// startServer starts s, whose log and options are set, on a free port.
func startServer(t testing.TB, s *Server) *Server {
	t.Helper()
	need(t, "redis-server")
	s.t = t
	t.Cleanup(s.Kill)
	var err error
	for range 10 {
		s.port = 20000 + rand.IntN(12000)
		if !portFree(s.port) || (s.bus && !portFree(s.port+10000)) {
			continue
		}
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("cannot start redis-server: %v\n%s", err, s.tail(20))
	return nil
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func (s *Server) start() error {
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	port := []string{"--port", strconv.Itoa(s.port)}
	if s.tls != nil {
		port = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port)}
	}
	args := append(append(append(s.pre[:len(s.pre):len(s.pre)], port...),
		"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", filepath.Dir(s.log)), s.args...)
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited: %v", s.port, cmd.ProcessState)
		default:
		}
		if err = ping(s.Addr(), s.tls); err == nil {
			return nil
		}
	}
	s.Kill()
	return fmt.Errorf("redis-server on port %d does not answer: %v", s.port, err)
}

// ping checks that the server answers, by hand: a go-redis client would log
// each refused connection while the server starts. A server that asks for
// a password answers too (NOAUTH). tlsConfig, when set, is the client's
// TLS configuration.
func ping(addr string, tlsConfig *tls.Config) error {
	var c net.Conn
	var err error
	if tlsConfig != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, tlsConfig)
	} else {
		c, err = net.DialTimeout("tcp", addr, time.Second)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if s := string(buf); s != "+PONG\r\n" && !strings.HasPrefix(s, "-NOAUTH") {
		return fmt.Errorf("PING answered %q", buf)
	}
	return nil
}

// Kill stops the server at once (SIGKILL); it loses every key.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts the server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("restarting redis-server: %v\n%s", err, s.tail(20))
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// URL is the server's redis:// URL, database 0; rediss:// for a TLS server.
func (s *Server) URL() string {
	if s.tls != nil {
		return "rediss://" + s.Addr() + "/0"
	}
	return "redis://" + s.Addr() + "/0"
}

// Client returns a new client of the server, without retries; the caller
// closes it. A TLS server's client trusts its CA and has a client
// certificate.
func (s *Server) Client(opts ...func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: s.Addr(), MaxRetries: -1}
	if s.tls != nil {
		o.TLSConfig = s.tls.Clone()
	}
	for _, f := range opts {
		f(o)
	}
	return redis.NewClient(o)
}

// tail returns the last n lines of the server's log.
func (s *Server) tail(n int) string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
