//go:build unix

package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// startTimeout bounds how long Start waits for the supervisor to say it
	// started the command: it runs the program's package initialisers
	// before its own, and one of them could hang.
	startTimeout = 30 * time.Second
	// hangSlack is how long after a stop's grace beat still waits for the
	// supervisor before it kills it and the command's group itself. It
	// exceeds what the supervisor takes after SIGKILL: settleBound for the
	// group, settleBound again for the descendants that escaped it.
	hangSlack = 2*settleBound + 3*time.Second
	// statusTimeout bounds the read of the final status once the supervisor
	// has exited: what it wrote is buffered in the socket, and nothing else
	// can hold its end, so this only guards against a bug.
	statusTimeout = time.Second
)

// ErrStopped is returned by [Cmd.Wait] when the command exited with status
// 0 after a stop request reached it: it ended because it was asked to, not
// because it had finished.
var ErrStopped = errors.New("stopped on request")

// ExitError reports a command that exited with a non-zero code or was
// ended by a signal. Its message is os.ProcessState's ("exit status 3",
// "signal: killed").
type ExitError struct {
	status status
}

func (e *ExitError) Error() string { return e.status.String() }

// ExitCode returns the exit code, or -1 if a signal ended the command, as
// os.ProcessState.ExitCode does.
func (e *ExitError) ExitCode() int { return e.status.code }

// Cmd is a command run under a supervisor. Set its fields, call Start, then
// Wait, once each.
type Cmd struct {
	Path string   // the program; resolve it as exec.Command does
	Args []string // the command line, Args[0] included
	Env  []string
	Dir  string // empty: the caller's working directory
	// Stdout and Stderr receive the command's output; nil discards it.
	Stdout, Stderr io.Writer
	// KillGrace is how long what the command leaves behind in its process
	// group gets between SIGTERM and SIGKILL when the command exits.
	KillGrace time.Duration
	// StopGrace is asked once, when Start's ctx is done, how long the
	// command gets between SIGTERM and SIGKILL (0: SIGKILL at once). Nil
	// means KillGrace.
	StopGrace func() time.Duration
	// Lease, when set, is the run's lease. What is left of it is passed on
	// to the supervisor at each change (a renewal) and at least every
	// leaseEvery: when the supervisor is not told of a renewal before the
	// lease it last heard of ends, it SIGKILLs the command's group on its
	// own, as when beat is frozen (SIGSTOP, a paused VM) or hung and cannot.
	Lease Lease
	// WaitDelay bounds how long Wait waits, after the supervisor has ended,
	// for the output pipes to close. Only a process beyond the supervisor's
	// reach can hold them then: one that left the command's group on a
	// system without subreapers, or one handed the pipe by another means.
	WaitDelay time.Duration

	proc    *exec.Cmd
	ctl     *os.File
	ctlR    *bufio.Reader
	pid     int        // the command's pid, from "started"
	pipes   []*os.File // read ends of the command's stdout and stderr
	copies  chan error // one result per pipe
	done    chan struct{}
	watched chan struct{} // closed when the ctx watcher has returned

	stopMu   sync.Mutex
	stopSent bool
	grace    time.Duration
	ended    status
	hasEnded bool
}

// Start starts the supervisor and, through it, the command. It returns
// when the command runs, or with the error that kept it from running: an
// *os.PathError like os/exec's for a program or directory that cannot be
// used, ctx's error when ctx is already done. When ctx is done later, the
// command is stopped (see StopGrace); Wait still has to be called.
func (c *Cmd) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(c.Args) == 0 {
		return errors.New("exec supervisor: no arguments; Args[0] names the program")
	}
	if c.Dir != "" {
		// As os.StartProcess does: a missing directory would otherwise read
		// as a missing program.
		if _, err := os.Stat(c.Dir); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				pe.Op = "chdir"
			}
			return err
		}
	}
	self, err := executable()
	if err != nil {
		return fmt.Errorf("exec supervisor: find this program's binary to run it as the supervisor: %w", err)
	}

	var files []*os.File // ours to close, whatever happens
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	ctl, supCtl, err := socketpair()
	if err != nil {
		return fmt.Errorf("exec supervisor: create the control socket: %w", err)
	}
	files = append(files, ctl, supCtl)
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll()
		return fmt.Errorf("exec supervisor: create the stdout pipe: %w", err)
	}
	files = append(files, outR, outW)
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll()
		return fmt.Errorf("exec supervisor: create the stderr pipe: %w", err)
	}
	files = append(files, errR, errW)

	proc := exec.Command(self)
	proc.Args = []string{Marker}
	// The supervisor needs nothing from beat's environment (the command's
	// comes in the spec), and must not take GOGC, GODEBUG and friends meant
	// for beat; one P is plenty.
	proc.Env = []string{handshakeEnv + "=" + protocolVersion, "GOMAXPROCS=1", raceOptions()}
	// Its own stdout and stderr are not the command's: a Go runtime crash
	// report lands in beat's stderr, never in the task's output.
	proc.Stderr = os.Stderr
	proc.ExtraFiles = []*os.File{supCtl, outW, errW}
	// A process group of its own: a signal to beat's whole group (SIGSTOP,
	// SIGKILL, a Ctrl-C) then leaves it awake to watch the lease and to
	// kill the command when beat can no longer say it holds.
	proc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := proc.Start(); err != nil {
		closeAll()
		return fmt.Errorf("exec supervisor: start %s: %w", self, err)
	}
	supCtl.Close()
	outW.Close()
	errW.Close()

	c.proc, c.ctl, c.ctlR = proc, ctl, bufio.NewReader(ctl)
	c.pipes = []*os.File{outR, errR}
	c.copies = make(chan error, 2)
	go copyOutput(c.Stdout, outR, c.copies)
	go copyOutput(c.Stderr, errR, c.copies)
	c.done, c.watched = make(chan struct{}), make(chan struct{})

	sp := spec{path: c.Path, args: c.Args, env: c.Env, dir: c.Dir, killGrace: c.KillGrace}
	ctl.SetWriteDeadline(time.Now().Add(startTimeout))
	werr := sp.encode(ctl)
	ctl.SetWriteDeadline(time.Time{})
	// Only now may a stop be written: the supervisor reads the command first.
	go c.watch(ctx)
	if werr != nil {
		// The supervisor is gone or stuck; what it said, if anything, tells.
		proc.Process.Kill()
	}

	ctl.SetReadDeadline(time.Now().Add(startTimeout))
	line, rerr := readLine(c.ctlR)
	ctl.SetReadDeadline(time.Time{})
	if rest, ok := strings.CutPrefix(line, "started "); rerr == nil && ok {
		if pid, err := strconv.Atoi(rest); err == nil && pid > 0 {
			c.pid = pid
			return nil
		}
	}
	perr, ok := parseError(line, c.Path)
	if !ok || rerr != nil {
		proc.Process.Kill()
	}
	waitErr := c.finish()
	switch {
	case rerr == nil && ok:
		return perr
	case werr != nil:
		return fmt.Errorf("exec supervisor: send it the command: %w (the supervisor: %v)", werr, waitErr)
	case errors.Is(rerr, io.EOF):
		// Killed or crashed before it could tell the command's pid; the
		// command, if it had started, got SIGKILL as its parent died (Linux).
		return fmt.Errorf("exec supervisor (pid %d) ended (%v) before it reported whether the command started", proc.Process.Pid, waitErr)
	case rerr != nil:
		return fmt.Errorf("exec supervisor: read its answer: %w (the supervisor: %v)", rerr, waitErr)
	default:
		return fmt.Errorf("exec supervisor: unexpected answer %q", line)
	}
}

// raceOptions keeps beat's race detector options (a -race build: tests)
// but for the second the race runtime otherwise sleeps in os.Exit, which
// would delay the end of every run. Other builds ignore GORACE.
func raceOptions() string {
	return "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")
}

// Lease is the run's lease as the supervisor is told of it (tasks.Lease).
type Lease interface {
	// Left is how long the lease still holds.
	Left() time.Duration
	// Changed returns a channel closed at the next change of Left's answer.
	Changed() <-chan struct{}
}

// leaseEvery bounds how long the supervisor waits for news of the lease,
// besides the news of each renewal.
const leaseEvery = time.Second

// watch passes the lease on to the supervisor, and sends the stop request
// when ctx is done. If the supervisor has not ended by the grace plus
// hangSlack, it is stuck: watch kills it, and Wait then kills the command's
// group itself. It is the only writer of the control socket after Start;
// a failed write means the supervisor has gone, which Wait handles.
func (c *Cmd) watch(ctx context.Context) {
	defer close(c.watched)
	var news <-chan time.Time
	var changed <-chan struct{}
	newsTimer := time.NewTimer(0)
	defer newsTimer.Stop()
	if c.Lease != nil {
		news = newsTimer.C
	}
	tell := func() {
		// Changed before Left: a renewal between the two is not missed.
		changed = c.Lease.Changed()
		left := max(c.Lease.Left(), 0)
		c.ctl.WriteString(leaseLine(left))
		newsTimer.Reset(min(max(left/4, 10*time.Millisecond), leaseEvery))
	}
	stopping := ctx.Done()
	var hang <-chan time.Time
	for {
		select {
		case <-c.done:
			return
		case <-news:
			tell()
		case <-changed:
			tell() // Reset drops a pending tick (Go 1.23 timers)
		case <-stopping:
			stopping = nil
			grace := c.KillGrace
			if c.StopGrace != nil {
				grace = c.StopGrace()
			}
			grace = max(grace, 0)
			c.stopMu.Lock()
			c.stopSent, c.grace = true, grace
			c.stopMu.Unlock()
			hangTimer := time.NewTimer(grace + hangSlack)
			defer hangTimer.Stop()
			hang = hangTimer.C
			c.ctl.WriteString(stopLine(grace))
		case <-hang:
			c.proc.Process.Kill()
			return
		}
	}
}

// Wait waits for the command and everything left in its process group to
// be gone, and for its output to be copied. It returns nil on exit status
// 0; an *ExitError otherwise; ErrStopped for status 0 after a stop request
// reached the command; exec.ErrWaitDelay when the status was 0 but the
// output pipes stayed open WaitDelay past the supervisor's end.
func (c *Cmd) Wait() error {
	waitErr := c.proc.Wait()
	close(c.done)
	<-c.watched

	c.ctl.SetReadDeadline(time.Now().Add(statusTimeout))
	line, rerr := readLine(c.ctlR)
	var st status
	var err error
	if rerr == nil {
		st, err = parseStatus(line)
		if err != nil {
			if perr, ok := parseError(line, c.Path); ok {
				err = perr
			} else {
				err = fmt.Errorf("exec supervisor: unexpected report %q", line)
			}
		}
	} else {
		// Killed, or crashed. The command's group is now nobody's
		// business but ours; the parent-death signal (Linux) has ended the
		// command itself, not what it started.
		if c.pid > 1 { // -1 would signal every process we may signal
			syscall.Kill(-c.pid, syscall.SIGKILL)
		}
		err = fmt.Errorf("exec supervisor (pid %d) ended (%v) without reporting how the command ended; its process group %d was killed", c.proc.Process.Pid, waitErr, c.pid)
	}
	expired := c.finishOutput()
	c.ctl.Close()
	if err != nil {
		return err
	}
	c.stopMu.Lock()
	c.ended, c.hasEnded = st, true
	c.stopMu.Unlock()
	switch {
	case !st.success():
		return &ExitError{status: st}
	case st.stopped:
		return ErrStopped
	case expired:
		return exec.ErrWaitDelay
	}
	return nil
}

// Pids returns the command's pid, which is also its process group's id,
// and the supervisor's.
func (c *Cmd) Pids() (command, supervisor int) {
	return c.pid, c.proc.Process.Pid
}

// Stopped reports whether a stop request was sent (because Start's ctx was
// done), the grace it gave, and, once Wait has returned, how the command
// ended ("exit status 0", "signal: killed"; empty if unknown).
func (c *Cmd) Stopped() (grace time.Duration, ended string, ok bool) {
	c.stopMu.Lock()
	defer c.stopMu.Unlock()
	if c.hasEnded {
		ended = c.ended.String()
	}
	return c.grace, ended, c.stopSent
}

// finish cleans up after a start that failed once the supervisor ran.
func (c *Cmd) finish() error {
	err := c.proc.Wait()
	close(c.done)
	<-c.watched
	c.finishOutput()
	c.ctl.Close()
	return err
}

// finishOutput waits up to WaitDelay for the output to be copied, then
// closes the pipes; it reports whether the delay expired.
func (c *Cmd) finishOutput() (expired bool) {
	var delay <-chan time.Time // nil: wait as long as it takes, as os/exec
	if c.WaitDelay > 0 {
		timer := time.NewTimer(c.WaitDelay)
		defer timer.Stop()
		delay = timer.C
	}
	for n := 0; n < len(c.pipes); n++ {
		select {
		case <-c.copies:
		case <-delay:
			expired = true
			for _, p := range c.pipes {
				p.Close()
			}
			for ; n < len(c.pipes); n++ {
				<-c.copies
			}
		}
	}
	for _, p := range c.pipes {
		p.Close()
	}
	return expired
}

func copyOutput(w io.Writer, r *os.File, result chan<- error) {
	if w == nil {
		w = io.Discard
	}
	_, err := io.Copy(w, r)
	result <- err
}

func socketpair() (beat, supervisor *os.File, err error) {
	// Under ForkLock no child can be forked between socketpair and
	// CloseOnExec where SOCK_CLOEXEC is missing.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|sockCloexec, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, err
	}
	// Non-blocking, our end is served by the runtime's poller: reads and
	// writes take deadlines and park a goroutine rather than a thread.
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "exec supervisor control"), os.NewFile(uintptr(fds[1]), "exec supervisor control (its end)"), nil
}
