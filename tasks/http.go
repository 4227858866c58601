package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

const (
	// httpBodyKept is how much of a response body a failed run quotes.
	httpBodyKept = 1 << 10
	// httpBodyDrain is how much more is read and discarded so the connection
	// can be reused; past it, closing the body drops the connection, which
	// is cheaper than reading an unbounded body.
	httpBodyDrain = 64 << 10
	httpUserAgent = "beat"
)

// httpClient is shared by all http runs so that connections to the same
// server are reused from tick to tick. It has no timeout of its own: the
// run's context carries the task's timeout.
var httpClient = &http.Client{}

// httpOwnHeaders are the headers beat sets for every request; a receiver
// trusts them to deduplicate ticks and fence stale runs, so args cannot
// override them.
var httpOwnHeaders = []string{"Idempotency-Key", "Beat-Fencing-Token"}

type httpArgs struct {
	rawURL  string
	url     *url.URL
	method  string
	headers map[string]string // canonical names
	body    string
	expect  []int // empty: any 2xx
}

func parseHTTPArgs(args map[string]any) (httpArgs, error) {
	a := httpArgs{method: http.MethodGet}
	errs := checkKnown(args, "url", "method", "headers", "body", "expect_status")

	raw, ok, err := optString(args, "url")
	switch {
	case err != nil:
		errs = append(errs, err)
	case !ok || raw == "":
		errs = append(errs, errors.New(`args.url: required; write the URL to call, e.g. url: "https://example.com/hook"`))
	default:
		u, perr := url.Parse(raw)
		switch {
		case perr != nil:
			errs = append(errs, fmt.Errorf("args.url: %q is not a URL (%v); write e.g. url: \"https://example.com/hook\"", raw, perr))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("args.url: %q is not an http or https URL", raw))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("args.url: %q has no host; write e.g. url: \"https://example.com/hook\"", raw))
		default:
			a.rawURL, a.url = raw, u
		}
	}

	method, ok, err := optString(args, "method")
	switch {
	case err != nil:
		errs = append(errs, err)
	case ok && !isToken(method):
		errs = append(errs, fmt.Errorf("args.method: %q is not an HTTP method; write e.g. method: POST", method))
	case ok:
		// Methods are case-sensitive on the wire, but every standard one is
		// upper case and `method: post` is a common slip.
		a.method = strings.ToUpper(method)
	}

	headers, herrs := stringMap(args, "headers")
	errs = append(errs, herrs...)
	a.headers = make(map[string]string, len(headers))
	for _, name := range sortedKeys(headers) {
		canon := http.CanonicalHeaderKey(name)
		value := headers[name]
		switch {
		case !isToken(name):
			errs = append(errs, fmt.Errorf("args.headers: %q is not a valid header name", name))
		case slices.Contains(httpOwnHeaders, canon):
			errs = append(errs, fmt.Errorf("args.headers.%s: beat sets this header for every request; remove it", name))
		case canon == "Content-Length" || canon == "Transfer-Encoding" || canon == "Trailer":
			errs = append(errs, fmt.Errorf("args.headers.%s: derived from args.body; remove it", name))
		case !validHeaderValue(value):
			errs = append(errs, fmt.Errorf("args.headers.%s: the value contains a control character (e.g. a newline), which HTTP does not allow", name))
		default:
			if _, dup := a.headers[canon]; dup {
				errs = append(errs, fmt.Errorf("args.headers.%s: given twice, in different case; keep one", name))
			}
			a.headers[canon] = value
		}
	}

	body, _, err := optString(args, "body")
	if err != nil {
		errs = append(errs, err)
	}
	a.body = body

	expect, eerrs := expectStatusArg(args)
	a.expect = expect
	errs = append(errs, eerrs...)
	return a, errors.Join(errs...)
}

func expectStatusArg(args map[string]any) ([]int, []error) {
	v, ok := args["expect_status"]
	if !ok {
		return nil, nil
	}
	list, isList := v.([]any)
	if ints, ok := v.([]int); ok {
		// A Go caller's natural type; YAML gives []any.
		isList = true
		for _, n := range ints {
			list = append(list, n)
		}
	}
	if !isList {
		hint := "[200, 204]"
		if n, isInt := asInt(v); isInt {
			hint = fmt.Sprintf("[%d]", n)
		}
		return nil, []error{fmt.Errorf("args.expect_status: got %s; write a list, e.g. expect_status: %s", describe(v), hint)}
	}
	if len(list) == 0 {
		return nil, []error{errors.New("args.expect_status: empty list; omit it to accept any 2xx, or list the statuses, e.g. expect_status: [200, 204]")}
	}
	var errs []error
	codes := make([]int, 0, len(list))
	for i, e := range list {
		n, isInt := asInt(e)
		switch {
		case !isInt:
			errs = append(errs, fmt.Errorf("args.expect_status[%d]: got %s, want an integer HTTP status, e.g. 200", i, describe(e)))
		case n < 100 || n > 599:
			errs = append(errs, fmt.Errorf("args.expect_status[%d]: %v is not an HTTP status (100-599)", i, e))
		default:
			codes = append(codes, int(n))
		}
	}
	return codes, errs
}

// isToken reports whether s is an RFC 9110 token, the syntax of methods and
// header names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue rejects the bytes net/http refuses to send, so the
// problem is reported at load time rather than on every tick.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// headerSafe percent-encodes control bytes, which a header value cannot
// carry; any other task name passes through unchanged.
func headerSafe(s string) string {
	if validHeaderValue(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func validateHTTPArgs(args map[string]any) error {
	_, err := parseHTTPArgs(args)
	return err
}

// runHTTP is the built-in "http" task: one request, failed unless the status
// is expected.
func runHTTP(ctx context.Context, run Run) error {
	a, err := parseHTTPArgs(run.Args)
	if err != nil {
		return fmt.Errorf("http task %q: %w", run.Task, err)
	}
	var body io.Reader
	if a.body != "" {
		body = strings.NewReader(a.body)
	}
	req, err := http.NewRequestWithContext(ctx, a.method, a.rawURL, body)
	if err != nil {
		return fmt.Errorf("http task %q: build request: %w", run.Task, err)
	}
	req.Header.Set("User-Agent", httpUserAgent)
	for name, value := range a.headers {
		if name == "Host" {
			// net/http ignores a Host entry in Header.
			req.Host = value
			continue
		}
		req.Header.Set(name, value)
	}
	req.Header.Set("Idempotency-Key", headerSafe(run.Task)+"@"+formatTick(run.ScheduledAt))
	req.Header.Set("Beat-Fencing-Token", strconv.FormatUint(run.FencingToken, 10))

	target := a.method + " " + displayURL(a.url)
	resp, err := httpClient.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("http task %q: %s: aborted: %w", run.Task, target, cause)
		}
		// A *url.Error repeats the method and URL that target names.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("http task %q: %s: %w", run.Task, target, err)
	}
	defer resp.Body.Close()
	head, readErr := io.ReadAll(io.LimitReader(resp.Body, httpBodyKept))
	if readErr == nil {
		_, readErr = io.Copy(io.Discard, io.LimitReader(resp.Body, httpBodyDrain))
	}

	if !statusExpected(resp.StatusCode, a.expect) {
		return fmt.Errorf("http task %q: %s: got status %s, want %s; response body: %q",
			run.Task, target, resp.Status, describeExpect(a.expect), head)
	}
	if readErr != nil && ctx.Err() != nil {
		// The status was fine but the run was cancelled while the body was
		// still arriving; the receiver may not have finished either.
		return fmt.Errorf("http task %q: %s: status %s, then aborted reading the body: %w", run.Task, target, resp.Status, context.Cause(ctx))
	}
	run.Log().LogAttrs(ctx, slog.LevelInfo, "http response",
		slog.String("request", target),
		slog.Int("status", resp.StatusCode),
	)
	return nil
}

func statusExpected(code int, expect []int) bool {
	if len(expect) == 0 {
		return code >= 200 && code <= 299
	}
	return slices.Contains(expect, code)
}

func describeExpect(expect []int) string {
	if len(expect) == 0 {
		return "2xx"
	}
	s := make([]string, len(expect))
	for i, c := range expect {
		s[i] = strconv.Itoa(c)
	}
	if len(s) == 1 {
		return s[0]
	}
	return "one of " + strings.Join(s, ", ")
}

// displayURL is the URL for errors and logs: without credentials or query,
// which often carry secrets.
func displayURL(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" || c.ForceQuery {
		c.RawQuery, c.ForceQuery = "", false
		return c.String() + "?…"
	}
	return c.String()
}
