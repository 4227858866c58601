package tasks_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beatlock/beat/tasks"
)

type seenRequest struct {
	method string
	host   string
	body   string
	header http.Header
}

// recordingServer answers every request with status and body, and passes a
// copy of each request to the returned channel.
func recordingServer(t *testing.T, status int, body string) (*httptest.Server, <-chan seenRequest) {
	t.Helper()
	seen := make(chan seenRequest, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- seenRequest{method: r.Method, host: r.Host, body: string(b), header: r.Header.Clone()}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func httpRun(t *testing.T, args map[string]any) (tasks.Func, tasks.Run, *logCapture) {
	t.Helper()
	return builtinRun(t, "http", args)
}

func TestHTTPRequest(t *testing.T) {
	tests := []struct {
		name        string
		args        map[string]any
		task        string    // empty: httpRun's default
		scheduledAt time.Time // zero: httpRun's default
		wantMethod  string
		wantBody    string
		wantHost    string // empty: the server's own
		wantHeaders map[string]string
	}{
		{
			name:       "defaults",
			args:       map[string]any{},
			wantMethod: "GET",
			wantHeaders: map[string]string{
				"Idempotency-Key":    "backup@2026-11-27T13:00:05Z",
				"Beat-Fencing-Token": "42",
				"User-Agent":         "beat",
			},
		},
		{
			name: "method, body and headers",
			args: map[string]any{
				"method":  "post",
				"body":    `{"full": true}`,
				"headers": map[string]any{"content-type": "application/json", "X-Trace": "abc"},
			},
			wantMethod: "POST",
			wantBody:   `{"full": true}`,
			wantHeaders: map[string]string{
				"Content-Type":       "application/json",
				"X-Trace":            "abc",
				"Idempotency-Key":    "backup@2026-11-27T13:00:05Z",
				"Beat-Fencing-Token": "42",
			},
		},
		{
			name:       "user agent and host can be overridden",
			args:       map[string]any{"method": "PUT", "headers": map[string]any{"User-Agent": "nightly/1", "Host": "api.internal"}},
			wantMethod: "PUT",
			wantHost:   "api.internal",
			wantHeaders: map[string]string{
				"User-Agent": "nightly/1",
			},
		},
		{
			name:        "sub-second tick keeps its precision in the key",
			args:        map[string]any{},
			scheduledAt: time.Date(2026, 11, 27, 13, 0, 5, 500_000_000, time.UTC),
			wantMethod:  "GET",
			wantHeaders: map[string]string{"Idempotency-Key": "backup@2026-11-27T13:00:05.5Z"},
		},
		{
			name:        "control bytes in the task name are escaped",
			args:        map[string]any{},
			task:        "db\nbackup ünïcode",
			wantMethod:  "GET",
			wantHeaders: map[string]string{"Idempotency-Key": "db%0Abackup ünïcode@2026-11-27T13:00:05Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, seen := recordingServer(t, http.StatusOK, "ok")
			tt.args["url"] = srv.URL + "/hook"
			fn, run, logs := httpRun(t, tt.args)
			if tt.task != "" {
				run.Task = tt.task
			}
			if !tt.scheduledAt.IsZero() {
				run.ScheduledAt = tt.scheduledAt
			}
			if err := fn(context.Background(), run); err != nil {
				t.Fatal(err)
			}
			var got seenRequest
			select {
			case got = <-seen:
			default:
				t.Fatal("the server saw no request")
			}
			if got.method != tt.wantMethod {
				t.Errorf("method = %q, want %q", got.method, tt.wantMethod)
			}
			if got.body != tt.wantBody {
				t.Errorf("body = %q, want %q", got.body, tt.wantBody)
			}
			wantHost := tt.wantHost
			if wantHost == "" {
				wantHost = strings.TrimPrefix(srv.URL, "http://")
			}
			if got.host != wantHost {
				t.Errorf("Host = %q, want %q", got.host, wantHost)
			}
			for k, v := range tt.wantHeaders {
				if vals := got.header.Values(k); len(vals) != 1 || vals[0] != v {
					t.Errorf("header %s = %q, want exactly [%q]", k, vals, v)
				}
			}
			if len(logs.find(t, "http response")) != 1 {
				t.Errorf("want one %q log record, got %v", "http response", logs.records(t))
			}
		})
	}
}

func TestHTTPStatus(t *testing.T) {
	long := strings.Repeat("a", 1024) + strings.Repeat("b", 100<<10)
	tests := []struct {
		name    string
		status  int
		body    string
		expect  []any
		wantErr string // "|"-separated parts; empty: success
		notIn   string
	}{
		{name: "200 is 2xx", status: 200},
		{name: "204 is 2xx", status: 204},
		{name: "299 is 2xx", status: 299},
		{name: "500 fails", status: 500, body: "boom", wantErr: `got status 500 Internal Server Error, want 2xx; response body: "boom"`},
		{name: "304 is not 2xx", status: 304, wantErr: "got status 304 Not Modified, want 2xx"},
		{name: "expected 404", status: 404, expect: []any{404, 410}},
		{name: "unexpected 200", status: 200, body: "fine", expect: []any{201}, wantErr: `got status 200 OK, want 201; response body: "fine"`},
		{name: "list of expected", status: 202, expect: []any{200, 201}, wantErr: "want one of 200, 201"},
		{name: "body quoted up to 1 KiB", status: 503, body: long, wantErr: `"` + strings.Repeat("a", 1024) + `"`, notIn: "aaab"},
		{name: "no secrets from the URL", status: 500, wantErr: "GET http://127.0.0.1:|/hook?…", notIn: "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := recordingServer(t, tt.status, tt.body)
			url := strings.Replace(srv.URL, "http://", "http://user:secret@", 1) + "/hook?token=secret"
			args := map[string]any{"url": url}
			if tt.expect != nil {
				args["expect_status"] = tt.expect
			}
			fn, run, _ := httpRun(t, args)
			err := fn(context.Background(), run)
			checkErr(t, err, tt.wantErr)
			if tt.notIn != "" && strings.Contains(err.Error(), tt.notIn) {
				t.Errorf("error contains %q: %v", tt.notIn, err)
			}
		})
	}
}

func TestHTTPCancelAbortsSlowHandler(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	// Cleanups run last-in first-out: release the handler before Close
	// waits for it.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	errLost := errors.New("test: lease lost")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	fn, run, _ := httpRun(t, map[string]any{"url": srv.URL})
	done := make(chan error, 1)
	go func() { done <- fn(ctx, run) }()

	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("run ended before the handler was reached: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("handler not reached within 30s")
	}
	cancel(errLost)
	select {
	case err := <-done:
		if !errors.Is(err, errLost) {
			t.Errorf("err = %v, want it to wrap the cancellation cause", err)
		}
		checkErr(t, err, `http task "backup": GET http://|aborted`)
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return within 20s of cancellation")
	}
}

func TestHTTPUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	fn, run, _ := httpRun(t, map[string]any{"url": url})
	err := fn(context.Background(), run)
	checkErr(t, err, `http task "backup": GET `+url+`: `)
	if n := strings.Count(err.Error(), url); n != 1 {
		t.Errorf("the error names the URL %d times; want once: %v", n, err)
	}
}

func TestHTTPInvalidArgsFailRun(t *testing.T) {
	fn, run, _ := httpRun(t, map[string]any{"url": "ftp://x"})
	checkErr(t, fn(context.Background(), run), `http task "backup": args.url: "ftp://x" is not an http or https URL`)
}
