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
		srv: &http.Server{
			Handler:           Handler(probes, c.metrics, c.status),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
		},
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
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
