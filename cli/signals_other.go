//go:build !unix

package cli

import "os"

var signals = []os.Signal{os.Interrupt}

func signalAction(os.Signal) action { return shutDown }
