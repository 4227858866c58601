package supervisor

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// sockCloexec makes the socketpair close-on-exec atomically; ForkLock
// covers the systems without it.
const sockCloexec = syscall.SOCK_CLOEXEC

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER (Linux 3.4), which package
// syscall does not name.
const prSetChildSubreaper = 36

// executable is what beat re-executes as the supervisor. /proc/self/exe is
// the running binary itself, even after an upgrade replaced or deleted the
// file it was started from.
func executable() (string, error) { return "/proc/self/exe", nil }

// commandSysProcAttr gives the command a process group of its own, and a
// SIGKILL if the supervisor dies (the parent-death signal): if beat and the
// supervisor die together (both SIGKILLed, say), nobody is left to kill the
// group, and this at least ends the command itself.
func commandSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// becomeSubreaper makes descendants that lose their parent the
// supervisor's children instead of init's, so that it can find (and kill)
// those that left the command's process group with setsid. On a kernel
// without it they go to init and are beyond reach, as on other systems.
func becomeSubreaper() {
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
}

// killOrphans SIGKILLs the supervisor's remaining children (descendants
// re-parented to it), reaps them, and repeats, because each one killed may
// hand its own children over; settleBound caps it all.
func killOrphans(chld <-chan os.Signal) {
	self := os.Getpid()
	deadline := time.Now().Add(settleBound)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if !reapAll() {
			return
		}
		kids := children(self)
		if len(kids) == 0 {
			return
		}
		for _, pid := range kids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		timer.Reset(min(left, 10*time.Millisecond))
		select {
		case <-chld:
		case <-timer.C:
		}
	}
}

// children lists the processes whose parent is pid, from /proc.
func children(pid int) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	var kids []int
	for _, name := range names {
		p, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(p); ok && ppid == pid {
			kids = append(kids, p)
		}
	}
	return kids
}

// parentOf reads the parent's pid from /proc/<pid>/stat. The command name
// in parentheses may hold anything, ") " included, so the fields are
// counted from the last ")".
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(string(f[1]))
	return ppid, err == nil
}
