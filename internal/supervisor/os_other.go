//go:build unix && !linux

package supervisor

import (
	"os"
	"syscall"
)

// sockCloexec is 0 where socketpair takes no SOCK_CLOEXEC; ForkLock keeps
// the pair from leaking into a child forked meanwhile.
const sockCloexec = 0

// executable is what beat re-executes as the supervisor. Without /proc
// there is no handle on the running binary itself; an upgrade that
// replaces the file starts the new binary as supervisor, and the protocol
// version in the handshake catches a mismatch.
func executable() (string, error) { return os.Executable() }

// commandSysProcAttr gives the command a process group of its own.
func commandSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// becomeSubreaper does nothing: only Linux has child subreapers, so
// descendants that leave the command's group with setsid are beyond reach.
func becomeSubreaper() {}

// killOrphans only reaps: without a subreaper the command is the
// supervisor's only child.
func killOrphans(<-chan os.Signal) { reapAll() }
