//go:build unix

package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// handshakeEnv must hold protocolVersion in a supervisor's environment.
	// It is the second of the three checks (argv[0], this, fd 3) that keep
	// a normal run of the program from ever taking itself for a supervisor.
	handshakeEnv    = "BEAT_EXEC_SUPERVISOR"
	protocolVersion = "1"

	// ctlFD, outFD and errFD are the supervisor's control socket and the
	// command's stdout and stderr, as beat passes them (exec.Cmd.ExtraFiles).
	ctlFD = 3
	outFD = 4
	errFD = 5

	// maxLine bounds one protocol line. An argument or variable can be at
	// most 128 KiB on Linux, and quoting at most quadruples it.
	maxLine = 1 << 20
	// maxSpecLines bounds the command's description, far above what any
	// kernel accepts as argv plus environment.
	maxSpecLines = 1 << 17
)

// spec is the command beat asks the supervisor to run.
type spec struct {
	path      string
	args      []string
	env       []string
	dir       string
	killGrace time.Duration
}

func (s *spec) encode(w io.Writer) error {
	bw := bufio.NewWriter(w)
	field := func(key, value string) {
		bw.WriteString(key)
		bw.WriteByte(' ')
		bw.WriteString(strconv.Quote(value))
		bw.WriteByte('\n')
	}
	field("path", s.path)
	for _, a := range s.args {
		field("arg", a)
	}
	for _, e := range s.env {
		field("env", e)
	}
	if s.dir != "" {
		field("dir", s.dir)
	}
	fmt.Fprintf(bw, "kill_grace %d\nstart\n", s.killGrace)
	return bw.Flush()
}

func readSpec(r *bufio.Reader) (spec, error) {
	var s spec
	for range maxSpecLines {
		line, err := readLine(r)
		if err != nil {
			return spec{}, fmt.Errorf("read the command: %w", err)
		}
		key, value, _ := strings.Cut(line, " ")
		switch key {
		case "start":
			if s.path == "" || len(s.args) == 0 {
				return spec{}, errors.New("read the command: no path or no arguments before start")
			}
			return s, nil
		case "kill_grace":
			ns, err := strconv.ParseInt(value, 10, 64)
			if err != nil || ns < 0 {
				return spec{}, fmt.Errorf("read the command: kill_grace %q is not a non-negative number of nanoseconds", value)
			}
			s.killGrace = time.Duration(ns)
			continue
		}
		str, err := strconv.Unquote(value)
		if err != nil {
			return spec{}, fmt.Errorf("read the command: %s: %q is not a quoted string", key, value)
		}
		switch key {
		case "path":
			s.path = str
		case "arg":
			s.args = append(s.args, str)
		case "env":
			s.env = append(s.env, str)
		case "dir":
			s.dir = str
		default:
			return spec{}, fmt.Errorf("read the command: unknown field %q", key)
		}
	}
	return spec{}, fmt.Errorf("read the command: more than %d lines", maxSpecLines)
}

// readLine returns the next line without its newline. A line cut short by
// the end of input is an error: every message ends with a newline.
func readLine(r *bufio.Reader) (string, error) {
	var long []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(long)+len(chunk) > maxLine+1 { // +1: the newline
			return "", fmt.Errorf("a line longer than %d bytes", maxLine)
		}
		switch {
		case err == nil && long == nil:
			return string(chunk[:len(chunk)-1]), nil
		case err == nil:
			long = append(long, chunk[:len(chunk)-1]...)
			return string(long), nil
		case errors.Is(err, bufio.ErrBufferFull):
			long = append(long, chunk...)
		case errors.Is(err, io.EOF) && len(long)+len(chunk) > 0:
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

// stopLine asks the supervisor to stop the command within grace.
func stopLine(grace time.Duration) string { return durationLine("stop", grace) }

// leaseLine tells the supervisor that the run's lease holds for left more:
// without a newer one by then, it kills the command's group.
func leaseLine(left time.Duration) string { return durationLine("lease", left) }

func durationLine(verb string, d time.Duration) string {
	return verb + " " + strconv.FormatInt(int64(max(d, 0)), 10) + "\n"
}

func parseStop(line string) (time.Duration, bool)  { return parseDuration(line, "stop") }
func parseLease(line string) (time.Duration, bool) { return parseDuration(line, "lease") }

func parseDuration(line, verb string) (time.Duration, bool) {
	v, ok := strings.CutPrefix(line, verb+" ")
	if !ok {
		return 0, false
	}
	ns, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ns < 0 {
		return 0, false
	}
	return time.Duration(ns), true
}

// status is how the command ended.
type status struct {
	code    int            // exit code; -1 when a signal ended it
	signal  syscall.Signal // when code is -1
	core    bool           // the signal dumped core
	stopped bool           // a stop request reached the command before it ended
}

func statusOf(ws syscall.WaitStatus) status {
	if ws.Signaled() {
		return status{code: -1, signal: ws.Signal(), core: ws.CoreDump()}
	}
	return status{code: ws.ExitStatus()}
}

func (s status) success() bool { return s.code == 0 }

func (s status) line() string {
	var b strings.Builder
	if s.code >= 0 {
		b.WriteString("exit " + strconv.Itoa(s.code))
	} else {
		b.WriteString("signal " + strconv.Itoa(int(s.signal)))
		if s.core {
			b.WriteString(" core")
		}
	}
	if s.stopped {
		b.WriteString(" stopped")
	}
	b.WriteByte('\n')
	return b.String()
}

// String says how the command ended in os.ProcessState's words, which the
// messages users already know (and grep their logs for) are made of.
func (s status) String() string {
	if s.code >= 0 {
		return "exit status " + strconv.Itoa(s.code)
	}
	str := "signal: " + s.signal.String()
	if s.core {
		str += " (core dumped)"
	}
	return str
}

func parseStatus(line string) (status, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return status{}, fmt.Errorf("not a status: %q", line)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 0 {
		return status{}, fmt.Errorf("not a status: %q", line)
	}
	var s status
	switch f[0] {
	case "exit":
		s.code = n
	case "signal":
		s.code, s.signal = -1, syscall.Signal(n)
	default:
		return status{}, fmt.Errorf("not a status: %q", line)
	}
	for _, flag := range f[2:] {
		switch {
		case flag == "core" && s.code < 0:
			s.core = true
		case flag == "stopped":
			s.stopped = true
		default:
			return status{}, fmt.Errorf("not a status: %q", line)
		}
	}
	return s, nil
}

// errorLine reports a failure; errno 0 means err is no system error.
func errorLine(op string, err error) string {
	var errno syscall.Errno
	errors.As(err, &errno)
	return "error " + op + " " + strconv.Itoa(int(errno)) + " " + strconv.Quote(err.Error()) + "\n"
}

// parseError turns an error line back into an error; path names what op
// failed on, so that a failed start reads as it does from os/exec, e.g.
// "fork/exec /usr/local/bin/x: permission denied".
func parseError(line, path string) (error, bool) {
	rest, ok := strings.CutPrefix(line, "error ")
	if !ok {
		return nil, false
	}
	op, rest, _ := strings.Cut(rest, " ")
	num, detail, _ := strings.Cut(rest, " ")
	errno, err := strconv.Atoi(num)
	if err != nil || errno < 0 {
		return nil, false
	}
	if errno > 0 {
		return &os.PathError{Op: op, Path: path, Err: syscall.Errno(errno)}, true
	}
	if d, err := strconv.Unquote(detail); err == nil {
		detail = d
	}
	return fmt.Errorf("exec supervisor: %s: %s", op, detail), true
}
