//go:build unix

package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// probeEnv makes this test binary, started by TestHandshake, say that it
// runs as a normal program and exit, instead of running the tests.
const probeEnv = "SUPERVISOR_TEST_PROBE"

func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) == "1" {
		// Only reached if init did not take the process for a supervisor.
		fmt.Println("normal run")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestHandshake starts this test binary with every partial handshake and
// checks that only the full one (argv[0], environment, a Unix stream
// socket on fd 3) makes it a supervisor: the marker alone never does.
func TestHandshake(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	stream := func(t *testing.T) (ours, theirs *os.File) {
		return socketFiles(t, syscall.SOCK_STREAM)
	}
	tests := []struct {
		name     string
		argv     []string
		env      string // the handshake variable's value; "-": unset
		fd3      func(t *testing.T) (ours, theirs *os.File)
		wantCode int
		wantOut  string // stdout
		wantCtl  string // what the supervisor wrote on fd 3
	}{
		{name: "marker alone", argv: []string{Marker}, env: "-", wantOut: "normal run\n"},
		{name: "marker and environment, no fd 3", argv: []string{Marker}, env: protocolVersion, wantOut: "normal run\n"},
		{name: "fd 3 a pipe", argv: []string{Marker}, env: protocolVersion, fd3: func(t *testing.T) (*os.File, *os.File) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			return w, r
		}, wantOut: "normal run\n"},
		{name: "fd 3 a datagram socket", argv: []string{Marker}, env: protocolVersion, fd3: func(t *testing.T) (*os.File, *os.File) {
			return socketFiles(t, syscall.SOCK_DGRAM)
		}, wantOut: "normal run\n"},
		{name: "argv[0] not the marker", argv: []string{"beat"}, env: protocolVersion, fd3: stream, wantOut: "normal run\n"},
		{name: "marker with arguments", argv: []string{Marker, "run"}, env: protocolVersion, fd3: stream, wantOut: "normal run\n"},
		{name: "full handshake, beat gone", argv: []string{Marker}, env: protocolVersion, fd3: stream, wantCode: exitBeatGone},
		{name: "full handshake, other protocol", argv: []string{Marker}, env: "0", fd3: stream, wantCode: exitProtocol,
			wantCtl: `error protocol 0 "the supervisor speaks protocol 1, beat \"0\""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := &exec.Cmd{Path: self, Args: tt.argv, Env: []string{probeEnv + "=1", raceOptions()}}
			if tt.env != "-" {
				cmd.Env = append(cmd.Env, handshakeEnv+"="+tt.env)
			}
			var ours *os.File
			if tt.fd3 != nil {
				var theirs *os.File
				ours, theirs = tt.fd3(t)
				defer ours.Close()
				cmd.ExtraFiles = []*os.File{theirs}
				defer theirs.Close()
			}
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var ctl string
			if ours != nil {
				cmd.ExtraFiles[0].Close()
				if tt.wantCtl != "" {
					ours.SetReadDeadline(time.Now().Add(30 * time.Second))
					line, err := readLine(bufio.NewReader(ours))
					if err != nil {
						t.Fatalf("read fd 3: %v", err)
					}
					ctl = line
				}
				// Our end closed: a supervisor sees beat gone.
				ours.Close()
			}
			err := cmd.Wait()
			code := 0
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || stdout.String() != tt.wantOut {
				t.Errorf("exit code %d, stdout %q; want %d, %q", code, stdout.String(), tt.wantCode, tt.wantOut)
			}
			if ctl != tt.wantCtl {
				t.Errorf("on fd 3: %q, want %q", ctl, tt.wantCtl)
			}
		})
	}
}

func socketFiles(t *testing.T, typ int) (ours, theirs *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	syscall.SetNonblock(fds[0], true)
	return os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
}

// startShell runs script under a supervisor; the script must write two
// pids ($$ and $PPID) to $READY, a FIFO, and then wait on $GO, another.
func startShell(t *testing.T, ctx context.Context, script string, stdout, stderr *bytes.Buffer, waitDelay time.Duration) (c *Cmd, shell, sup int, release func()) {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	ready, goOn := filepath.Join(dir, "ready"), filepath.Join(dir, "go")
	for _, p := range []string{ready, goOn} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c = &Cmd{
		Path: sh, Args: []string{"sh", "-c", script},
		Env:    []string{"READY=" + ready, "GO=" + goOn, "PATH=" + os.Getenv("PATH")},
		Stdout: stdout, Stderr: stderr,
		KillGrace: time.Second, WaitDelay: waitDelay,
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(ready)
		got <- string(b)
	}()
	var line string
	select {
	case line = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the shell did not report within 30s")
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		t.Fatalf("the shell wrote %q, want two pids", line)
	}
	shell, _ = strconv.Atoi(f[0])
	sup, _ = strconv.Atoi(f[1])
	if shell <= 1 || sup <= 1 {
		t.Fatalf("the shell wrote %q", line)
	}
	t.Cleanup(func() { syscall.Kill(-shell, syscall.SIGKILL) })
	return c, shell, sup, func() {
		w, err := os.OpenFile(goOn, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteString("go\n")
		w.Close()
	}
}

// TestProcessShape checks the process tree and the supervisor's lean
// state while a command runs, and logs its memory.
func TestProcessShape(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	var stdout, stderr bytes.Buffer
	c, shell, sup, release := startShell(t, context.Background(), `echo "$$ $PPID" > "$READY"; read x < "$GO"`, &stdout, &stderr, 5*time.Second)

	stat := func(pid int) (ppid, pgid int) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		ppid, _ = strconv.Atoi(f[1])
		pgid, _ = strconv.Atoi(f[2])
		return ppid, pgid
	}
	supPPID, supPGID := stat(sup)
	shellPPID, shellPGID := stat(shell)
	// A group of its own: a SIGSTOP or SIGKILL to beat's group leaves it
	// awake to end the command.
	if supPPID != os.Getpid() || supPGID != sup {
		t.Errorf("supervisor: parent %d, group %d; want ours, %d, and a group of its own, %d", supPPID, supPGID, os.Getpid(), sup)
	}
	if shellPPID != sup || shellPGID != shell {
		t.Errorf("command: parent %d, group %d; want the supervisor %d and a group of its own %d", shellPPID, shellPGID, sup, shell)
	}
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", sup)); string(b) != Marker+"\x00" {
		t.Errorf("supervisor's command line %q, want %q", b, Marker)
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", sup))
	if want := handshakeEnv + "=" + protocolVersion + "\x00GOMAXPROCS=1\x00" + raceOptions() + "\x00"; string(env) != want {
		t.Errorf("supervisor's environment %q, want only %q", env, want)
	}
	// Only the command holds its output pipes; nothing the command runs
	// holds the control socket, or beat would not see the supervisor die.
	for fd := 3; fd < 64; fd++ {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", sup, fd)); err == nil && strings.HasPrefix(l, "pipe:") && fd != 2 {
			t.Errorf("supervisor holds a pipe on fd %d (%s)", fd, l)
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", shell, fd)); err == nil && strings.HasPrefix(l, "socket:") {
			t.Errorf("the command inherited a socket on fd %d", fd)
		}
	}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", sup)); err == nil {
		var rss []string
		for line := range strings.Lines(string(status)) {
			for _, k := range []string{"VmRSS:", "RssAnon:", "RssFile:", "Threads:"} {
				if strings.HasPrefix(line, k) {
					rss = append(rss, strings.Join(strings.Fields(line), " "))
				}
			}
		}
		t.Logf("supervisor: %s", strings.Join(rss, ", "))
	}

	release()
	if err := c.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if _, _, stopped := c.Stopped(); stopped {
		t.Error("Stopped reports a stop that was never asked for")
	}
	if stdout.Len() != 0 || stderr.Len() != 0 {
		t.Errorf("output %q, %q; want none: the command wrote nothing", stdout.String(), stderr.String())
	}
}

// TestWaitDelay: a process beyond the supervisor's reach that holds the
// output pipe open (here this test, which reopens the command's stdout
// through /proc) bounds Wait by WaitDelay, reported as exec.ErrWaitDelay.
func TestWaitDelay(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reopens a pipe through /proc")
	}
	const waitDelay = 200 * time.Millisecond
	var stdout, stderr bytes.Buffer
	c, shell, _, release := startShell(t, context.Background(), `echo "$$ $PPID" > "$READY"; read x < "$GO"; echo done`, &stdout, &stderr, waitDelay)
	held, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/1", shell), os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("cannot reopen the command's stdout: %v", err)
	}
	defer held.Close()
	release()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if !errors.Is(err, exec.ErrWaitDelay) {
			t.Errorf("Wait = %v, want exec.ErrWaitDelay", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return within 30s although WaitDelay is 200ms")
	}
	if stdout.String() != "done\n" {
		t.Errorf("stdout %q, want the command's %q", stdout.String(), "done\n")
	}
}
