//go:build unix

package supervisor

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSpecRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		spec spec
	}{
		{"plain", spec{path: "/bin/sh", args: []string{"sh", "-c", "echo hi"}, env: []string{"A=b"}, killGrace: 5 * time.Second}},
		{"no env, dir, zero grace", spec{path: "/bin/true", args: []string{"true"}, dir: "/tmp"}},
		{"awkward strings", spec{
			path: "/opt/my prog/\"x\"",
			args: []string{"x", "line1\nline2", "tab\there", `back\slash`, "\xff\xfe not UTF-8", "", "start", "stop 5"},
			env:  []string{"EMPTY=", "NL=a\nb", "UNICODE=żółw"},
			dir:  "/srv/with space",
		}},
		{"long argument", spec{path: "/bin/echo", args: []string{"echo", strings.Repeat("\x01", 128<<10)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.spec.encode(&buf); err != nil {
				t.Fatal(err)
			}
			buf.WriteString(leaseLine(3 * time.Second))
			buf.WriteString(stopLine(time.Second))
			r := bufio.NewReaderSize(&buf, 4096)
			got, err := readSpec(r)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.spec) {
				t.Errorf("decoded %+v, want %+v", got, tt.spec)
			}
			// What follows the spec is left for the control loop.
			line, err := readLine(r)
			if d, ok := parseLease(line); err != nil || !ok || d != 3*time.Second {
				t.Errorf("after the spec: %q, %v; want the lease", line, err)
			}
			if _, ok := parseStop(line); ok {
				t.Errorf("%q read as a stop request", line)
			}
			line, err = readLine(r)
			if g, ok := parseStop(line); err != nil || !ok || g != time.Second {
				t.Errorf("after the spec: %q, %v; want the stop request", line, err)
			}
		})
	}
}

func TestReadSpecErrors(t *testing.T) {
	tests := []struct {
		name, input, wantErr string
		eof                  bool
	}{
		{"beat gone at once", "", "read the command: EOF", true},
		{"beat gone mid-line", "path \"/bin/sh", "unexpected EOF", true},
		{"beat gone before start", "path \"/bin/sh\"\narg \"sh\"\n", "EOF", true},
		{"unquoted", "path /bin/sh\n", `path: "/bin/sh" is not a quoted string`, false},
		{"unknown field", "user \"root\"\n", `unknown field "user"`, false},
		{"bad grace", "kill_grace -5\n", `kill_grace "-5"`, false},
		{"no path", "arg \"x\"\nstart\n", "no path or no arguments", false},
		{"no arguments", "path \"/bin/x\"\nstart\n", "no path or no arguments", false},
		{"line too long", "arg \"" + strings.Repeat("a", maxLine+10) + "\"\n", "a line longer than", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readSpec(bufio.NewReaderSize(strings.NewReader(tt.input), 4096))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF); eof != tt.eof {
				t.Errorf("reads as beat's end of input: %v, want %v (%v)", eof, tt.eof, err)
			}
		})
	}
}

func TestStatusLine(t *testing.T) {
	tests := []struct {
		st         status
		line, text string
	}{
		{status{code: 0}, "exit 0\n", "exit status 0"},
		{status{code: 3}, "exit 3\n", "exit status 3"},
		{status{code: 0, stopped: true}, "exit 0 stopped\n", "exit status 0"},
		{status{code: -1, signal: syscall.SIGKILL}, "signal 9\n", "signal: killed"},
		{status{code: -1, signal: syscall.SIGSEGV, core: true, stopped: true}, "signal 11 core stopped\n", "signal: segmentation fault (core dumped)"},
	}
	for _, tt := range tests {
		if got := tt.st.line(); got != tt.line {
			t.Errorf("%+v.line() = %q, want %q", tt.st, got, tt.line)
		}
		if got := tt.st.String(); got != tt.text {
			t.Errorf("%+v.String() = %q, want %q", tt.st, got, tt.text)
		}
		back, err := parseStatus(strings.TrimSuffix(tt.line, "\n"))
		if err != nil || back != tt.st {
			t.Errorf("parseStatus(%q) = %+v, %v; want %+v", tt.line, back, err, tt.st)
		}
	}
	for _, bad := range []string{"", "exit", "exit x", "exit -1", "exit 0 core", "signal 9 later", "started 5", "error fork/exec 2 \"x\""} {
		if st, err := parseStatus(bad); err == nil {
			t.Errorf("parseStatus(%q) = %+v, want an error", bad, st)
		}
	}
}

func TestErrorLine(t *testing.T) {
	tests := []struct {
		name    string
		op      string
		err     error
		wantMsg string
		wantIs  error
	}{
		{"system error reads as os/exec's", "fork/exec", syscall.EACCES, "fork/exec /bin/x: permission denied", os.ErrPermission},
		{"missing", "fork/exec", syscall.ENOENT, "fork/exec /bin/x: no such file or directory", os.ErrNotExist},
		{"not a system error", "protocol", errors.New("speaks \"2\"\nnot 1"), "exec supervisor: protocol: speaks \"2\"\nnot 1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := errorLine(tt.op, tt.err)
			if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
				t.Fatalf("errorLine = %q, want one line", line)
			}
			err, ok := parseError(strings.TrimSuffix(line, "\n"), "/bin/x")
			if !ok {
				t.Fatalf("parseError(%q) failed", line)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("error %q, want %q", err, tt.wantMsg)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
		})
	}
	if _, ok := parseError("exit 0", "/bin/x"); ok {
		t.Error("parseError took a status line for an error")
	}
}
