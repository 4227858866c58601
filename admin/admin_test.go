package admin_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/beatlock/beat/admin"
)

type probes struct {
	live, ready bool
}

func (p probes) Live() (bool, string)    { return p.live, "loop detail" }
func (p probes) Ready() (bool, []string) { return p.ready, []string{"store detail", "reload detail"} }

func TestEndpoints(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "beat_info 1\n") })
	status := func(ctx context.Context) (any, error) { return map[string]int{"tasks": 2}, nil }
	failing := func(ctx context.Context) (any, error) { return nil, errors.New("store down") }
	tests := []struct {
		name     string
		probes   probes
		status   admin.StatusFunc
		method   string
		path     string
		wantCode int
		wantBody string
	}{
		{"live", probes{live: true}, nil, "GET", "/healthz", 200, "ok\nloop detail\n"},
		{"stuck", probes{}, nil, "GET", "/healthz", 503, "not ok\nloop detail\n"},
		{"ready", probes{ready: true}, nil, "GET", "/readyz", 200, "ok\nstore detail\nreload detail\n"},
		{"unready", probes{}, nil, "GET", "/readyz", 503, "not ok\nstore detail\nreload detail\n"},
		{"metrics", probes{}, nil, "GET", "/metrics", 200, "beat_info 1\n"},
		{"status", probes{}, status, "GET", "/status", 200, "{\n  \"tasks\": 2\n}\n"},
		{"status fails", probes{}, failing, "GET", "/status", 503, "store down\n"},
		{"no status", probes{}, nil, "GET", "/status", 404, "404 page not found\n"},
		{"index", probes{}, status, "GET", "/", 200, "beat: /healthz /readyz /metrics /status\n"},
		{"unknown", probes{}, nil, "GET", "/nope", 404, "404 page not found\n"},
		{"post", probes{ready: true}, nil, "POST", "/readyz", 405, "Method Not Allowed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []admin.Option{admin.WithMetrics(metrics)}
			if tt.status != nil {
				opts = append(opts, admin.WithStatus(tt.status))
			}
			srv, err := admin.Listen("127.0.0.1:0", tt.probes, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			req, _ := http.NewRequest(tt.method, "http://"+srv.Addr()+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || string(body) != tt.wantBody {
				t.Errorf("%s %s = %d %q; want %d %q", tt.method, tt.path, resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestListenPortInUse(t *testing.T) {
	a, err := admin.Listen("127.0.0.1:0", probes{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	_, err = admin.Listen(a.Addr(), probes{})
	if err == nil || !strings.Contains(err.Error(), "http.listen \""+a.Addr()+"\"") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("second Listen on %s: %v; want an error naming http.listen and the address in use", a.Addr(), err)
	}
}

func TestShutdownStopsServing(t *testing.T) {
	srv, err := admin.Listen("127.0.0.1:0", probes{live: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := http.Get("http://" + srv.Addr() + "/healthz"); err == nil {
		t.Error("served after Shutdown")
	}
}

// Connections held open are cut off after the idle timeout, and no more
// than MaxConns are served at once; the probes answer again once they go.
func TestHeldConnectionsAreBounded(t *testing.T) {
	srv, err := admin.Listen("127.0.0.1:0", probes{live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range admin.MaxConns + 20 {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The listener holds MaxConns of them; the held ones are closed by the
	// server within its read-header timeout (they send nothing).
	closed := 0
	deadline := time.Now().Add(20 * time.Second)
	for _, c := range conns[:admin.MaxConns] {
		c.SetReadDeadline(deadline)
		if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	if closed != admin.MaxConns {
		t.Errorf("%d of %d silent connections closed by the server; want all", closed, admin.MaxConns)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + srv.Addr() + "/healthz")
	if err != nil {
		t.Fatalf("/healthz after the held connections went: %v", err)
	}
	resp.Body.Close()
}
