//go:build unix

package supervisor

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

const (
	// settleBound is how long the supervisor waits, after SIGKILL, for the
	// command's group and its other descendants to be gone. Only a process
	// stuck in the kernel (uninterruptible sleep) outlasts it.
	settleBound = 2 * time.Second
	// maxPoll caps the interval at which the supervisor looks whether the
	// command's group is empty: no event tells it when the last member, a
	// child of some other member, is gone.
	maxPoll = 100 * time.Millisecond
)

// Exit codes of the supervisor; beat learns the command's status from the
// control socket, so these only tell a person what happened.
const (
	exitReported = 0 // the command's end was reported
	exitProtocol = 3 // beat and the supervisor did not understand each other
	exitBeatGone = 4 // beat went away; everything was killed
)

// ignoredSignals are caught and dropped. Catching rather than ignoring
// (signal.Ignore) matters: a caught signal is reset to its default in the
// command at exec, an ignored one would stay ignored there.
var ignoredSignals = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE,
}

func init() {
	// All three checks, so that only Cmd.Start makes a supervisor: argv[0]
	// alone could be chosen by anyone who runs the binary (exec -a).
	if len(os.Args) != 1 || os.Args[0] != Marker {
		return
	}
	version, ok := syscall.Getenv(handshakeEnv)
	if !ok || !isUnixStreamSocket(ctlFD) {
		return
	}
	os.Exit(supervise(version))
}

func isUnixStreamSocket(fd int) bool {
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return false
	}
	typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
	if err != nil || typ != syscall.SOCK_STREAM {
		return false
	}
	sa, err := syscall.Getsockname(fd)
	_, unix := sa.(*syscall.SockaddrUnix)
	return err == nil && unix
}

// supervise is the supervisor's whole life; it returns its exit code.
func supervise(version string) int {
	// Nothing the command runs may inherit the control socket: beat learns
	// of the supervisor's death by the end of file on its own end.
	for _, fd := range []int{ctlFD, outFD, errFD} {
		syscall.CloseOnExec(fd)
	}
	// Non-blocking, the socket is served by the runtime's poller, so the
	// goroutine reading it parks instead of holding a thread in read(2).
	syscall.SetNonblock(ctlFD, true)
	ctl := os.NewFile(ctlFD, "control socket")
	report := func(line string) {
		// A failed write means beat is gone; the reader sees that too.
		ctl.WriteString(line)
	}
	if version != protocolVersion {
		report(errorLine("protocol", errors.New("the supervisor speaks protocol "+protocolVersion+", beat "+strconv.Quote(version))))
		return exitProtocol
	}

	signal.Notify(make(chan os.Signal, 1), ignoredSignals...)
	// Registered before the command starts, so that no exit goes unnoticed.
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	becomeSubreaper()

	r := bufio.NewReaderSize(ctl, 4096)
	sp, err := readSpec(r)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// beat went away before it said what to run.
			return exitBeatGone
		}
		report(errorLine("protocol", err))
		return exitProtocol
	}

	// The parent-death signal (Linux) is tied to the thread that forks, not
	// the process; init runs locked to the main thread, which lives as long
	// as the process. Saying so keeps it true if this code ever moves.
	runtime.LockOSThread()
	pid, err := syscall.ForkExec(sp.path, sp.args, &syscall.ProcAttr{
		Dir:   sp.dir,
		Env:   sp.env,
		Files: []uintptr{0, outFD, errFD},
		Sys:   commandSysProcAttr(),
	})
	// Only the command writes its output; keeping these would also keep the
	// pipes open after the command's group is gone.
	syscall.Close(outFD)
	syscall.Close(errFD)
	if err != nil {
		report(errorLine("fork/exec", err))
		return exitReported
	}
	// At once: the command already runs, and until beat has its pid, beat
	// cannot kill its group should the supervisor be killed.
	report("started " + strconv.Itoa(pid) + "\n")

	events := make(chan event)
	go readControl(r, events)
	s := &session{pgid: pid, killGrace: sp.killGrace, chld: chld}
	if beatGone := s.run(events); beatGone {
		killOrphans(chld)
		return exitBeatGone
	}
	killOrphans(chld)
	if !s.exited {
		report(errorLine("wait", errors.New("the command did not exit within "+settleBound.String()+" of SIGKILL")))
		return exitReported
	}
	report(s.status.line())
	return exitReported
}

// event is what beat said: stop within d, or its lease holds for d more,
// or, with beatGone, nothing more ever (its end of the socket is closed).
type event struct {
	stop, lease bool
	d           time.Duration
	beatGone    bool
}

// readControl forwards beat's requests. Any read error counts as beat's
// death: the supervisor can no longer hear it either way.
func readControl(r *bufio.Reader, events chan<- event) {
	for {
		line, err := readLine(r)
		if err != nil {
			events <- event{beatGone: true}
			return
		}
		if d, ok := parseStop(line); ok {
			events <- event{stop: true, d: d}
		} else if d, ok := parseLease(line); ok {
			events <- event{lease: true, d: d}
		}
	}
}

// session follows one command from its start to the end of its group.
type session struct {
	pgid      int // the command's pid, which is also its group's id
	killGrace time.Duration
	chld      <-chan os.Signal

	status   status
	exited   bool      // the command has been reaped
	stopped  bool      // a stop request reached it first
	termed   bool      // its group got SIGTERM
	killAt   time.Time // when the group gets SIGKILL; zero: no such plan
	killedAt time.Time // when it got SIGKILL; zero: not yet
	// leaseEnd is when the run's lease ends unless beat says it was renewed:
	// a beat that is frozen (SIGSTOP, a paused VM) or hung cannot stop the
	// command itself, and another replica may run the task after it.
	leaseEnd time.Time
	poll     time.Duration
}

// run returns when the command has exited and its group is empty, when
// SIGKILL has not emptied it within settleBound, or, with beatGone, when beat
// has gone and the group has been killed.
func (s *session) run(events <-chan event) (beatGone bool) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	s.poll = time.Millisecond
	for {
		if s.exited && s.groupGone() {
			return false
		}
		if !s.killedAt.IsZero() && time.Since(s.killedAt) >= settleBound {
			return false
		}
		var wake <-chan time.Time
		if d, ok := s.nextWake(); ok {
			timer.Reset(d)
			wake = timer.C
		}
		select {
		case <-s.chld:
			s.reap()
		case ev := <-events:
			switch {
			case ev.beatGone:
				s.kill()
				return true
			case ev.stop:
				s.stop(ev.d)
			case ev.lease:
				s.leaseEnd = time.Now().Add(ev.d)
			}
		case <-wake:
		}
		timer.Stop()
		if s.killedAt.IsZero() && !s.leaseEnd.IsZero() && !time.Now().Before(s.leaseEnd) {
			s.stopped = s.stopped || !s.exited
			s.kill()
		}
		if s.killedAt.IsZero() && !s.killAt.IsZero() && !time.Now().Before(s.killAt) {
			s.kill()
		}
	}
}

// nextWake says how long the loop may wait for a signal or a request before
// it must act on its own: SIGKILL due, the settle bound, or a look at
// whether leftovers have gone.
func (s *session) nextWake() (time.Duration, bool) {
	var d time.Duration
	ok := false
	at := func(t time.Duration) {
		if !ok || t < d {
			d, ok = max(t, 0), true
		}
	}
	if s.killedAt.IsZero() && !s.killAt.IsZero() {
		at(time.Until(s.killAt))
	}
	if s.killedAt.IsZero() && !s.leaseEnd.IsZero() {
		at(time.Until(s.leaseEnd))
	}
	if !s.killedAt.IsZero() {
		at(time.Until(s.killedAt.Add(settleBound)))
	}
	if s.exited || !s.killedAt.IsZero() {
		at(s.poll)
		s.poll = min(2*s.poll, maxPoll)
	}
	return d, ok
}

func (s *session) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if pid == s.pgid && !s.exited {
			s.exited = true
			s.status = statusOf(ws)
			s.status.stopped = s.stopped
			s.commandExited()
		}
		// Any other pid was a descendant re-parented to the supervisor;
		// reaping it is all there is to do.
	}
}

// commandExited ends what the command left behind in its group, as a
// Kubernetes Job's pod ends with all its containers' processes.
func (s *session) commandExited() {
	switch {
	case !s.killedAt.IsZero():
	case s.killGrace == 0:
		s.kill()
	default:
		if !s.termed {
			s.signalGroup(syscall.SIGTERM)
			s.termed = true
		}
		s.killBy(time.Now().Add(s.killGrace))
	}
}

func (s *session) stop(grace time.Duration) {
	if !s.killedAt.IsZero() {
		return
	}
	if !s.exited {
		s.stopped = true
	}
	if grace == 0 {
		s.kill()
		return
	}
	if !s.termed {
		s.signalGroup(syscall.SIGTERM)
		s.termed = true
	}
	s.killBy(time.Now().Add(grace))
}

func (s *session) killBy(t time.Time) {
	if s.killAt.IsZero() || t.Before(s.killAt) {
		s.killAt = t
	}
}

func (s *session) kill() {
	s.signalGroup(syscall.SIGKILL)
	s.killedAt = time.Now()
	s.poll = time.Millisecond
}

func (s *session) signalGroup(sig syscall.Signal) {
	// ESRCH: the group is empty. The pid cannot have been reused as a
	// group id meanwhile: Linux keeps an id while any process uses it as
	// its group's, and we only get here while the group may still exist.
	if s.pgid > 1 { // -1 would signal every process we may signal
		syscall.Kill(-s.pgid, sig)
	}
}

// groupGone reports whether no process, zombies included, is left in the
// command's group.
func (s *session) groupGone() bool {
	return errors.Is(syscall.Kill(-s.pgid, 0), syscall.ESRCH)
}

// reapAll reaps every child that has exited, without waiting.
func reapAll() (children bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.ECHILD):
			return false
		case err != nil || pid == 0:
			return true
		}
	}
}
