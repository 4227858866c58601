//go:build unix

package cli

import (
	"os"
	"syscall"
)

// signals are every signal `beat run` takes over from Go's defaults, which
// would end the process without the shutdown sequence (HUP, USR1, USR2,
// PIPE on a closed stderr) or with a stack dump (QUIT). Only SIGKILL can
// end beat without it.
var signals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT,
	syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE}

// signalAction says what a signal asks of `beat run`.
func signalAction(sig os.Signal) action {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		return shutDown
	case syscall.SIGQUIT:
		return dumpAndShutDown
	case syscall.SIGPIPE:
		return ignoreQuietly
	case syscall.SIGHUP:
		return reloadSchedule
	}
	return ignore
}
