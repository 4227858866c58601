// Package admin is beat's HTTP listener for operators and their tools:
// /metrics (Prometheus), /healthz (liveness), /readyz (readiness) and
// /status (the tasks' records in the lock store, as JSON).
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Probes are the verdicts /healthz and /readyz serve (health.Checker).
type Probes interface {
	Live() (bool, string)
	Ready() (bool, []string)
}

// StatusFunc returns what /status serves, encoded as JSON.
type StatusFunc func(ctx context.Context) (any, error)

// Server is a started listener.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Option configures a Server.
type Option func(*config)

type config struct {
	metrics http.Handler
	status  StatusFunc
	log     *slog.Logger
}

// WithMetrics serves h at /metrics.
func WithMetrics(h http.Handler) Option { return func(c *config) { c.metrics = h } }

// WithStatus serves f's answer at /status.
func WithStatus(f StatusFunc) Option { return func(c *config) { c.status = f } }

// WithLogger sets where the server's own errors go.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// Listen binds addr at once (so that a port in use fails the start, not a
// probe later) and serves probes and the optional endpoints on it.
func Listen(addr string, probes Probes, opts ...Option) (*Server, error) {
	c := config{log: slog.Default()}
	for _, o := range opts {
		o(&c)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %q: %w", addr, err)
	}
	s := &Server{
		ln:   ln,
		done: make(chan error, 1),
		// Probes and scrapers ask little and often: whoever holds
		// connections open, or trickles a request, is cut off before they
		// can take file descriptors and memory from the scheduler.
		srv: &http.Server{
			Handler:           Handler(probes, c.metrics, c.status),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second, // a large /metrics
			IdleTimeout:       10 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
		},
	}
	ln = &limitListener{Listener: ln, slots: make(chan struct{}, MaxConns), closed: make(chan struct{})}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// MaxConns is how many connections the listener serves at once; more wait
// in the kernel's backlog. Enough for every probe and scraper, few enough
// that connections held open cannot take the file descriptors and memory
// the scheduler and its tasks need.
const MaxConns = 256

// limitListener accepts a connection only while fewer than cap(slots) are
// open.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// Addr is the address the server listens on (with the port picked, when
// addr gave port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting requests and waits for those in flight, or ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Handler routes the endpoints; metrics and status may be nil.
func Handler(probes Probes, metrics http.Handler, status StatusFunc) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ok, detail := probes.Live()
		verdict(w, ok, []string{detail})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, lines := probes.Ready()
		verdict(w, ok, lines)
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	if status != nil {
		mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
			v, err := status(r.Context())
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(v)
		})
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		paths := []string{"/healthz", "/readyz"}
		if metrics != nil {
			paths = append(paths, "/metrics")
		}
		if status != nil {
			paths = append(paths, "/status")
		}
		fmt.Fprintf(w, "beat: %s\n", strings.Join(paths, " "))
	})
	return mux
}

// verdict writes a probe's answer: 200 or 503, "ok" or "not ok", then the
// details, one per line.
func verdict(w http.ResponseWriter, ok bool, lines []string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	head := "ok"
	if !ok {
		head = "not ok"
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, head)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
