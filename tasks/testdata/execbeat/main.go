// Command execbeat stands in for beat in TestExecNothingOutlivesBeat: a
// program that imports package tasks, like any beat binary, and runs one
// exec task until it is killed. SIGUSR1 cancels the run, as a lost lease
// would.
//
//	execbeat KILL_GRACE COMMAND [ARG...]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/beatlock/beat/tasks"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: execbeat KILL_GRACE COMMAND [ARG...]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGUSR1)
	defer stop()
	command := make([]any, 0, len(os.Args)-2)
	for _, a := range os.Args[2:] {
		command = append(command, a)
	}
	fn, _ := tasks.Default().Lookup("exec")
	err := fn(ctx, tasks.Run{
		Task:        "outlive",
		Type:        "exec",
		Args:        map[string]any{"command": command, "kill_grace": os.Args[1]},
		ScheduledAt: time.Now().UTC(),
		InstanceID:  "execbeat",
	})
	fmt.Fprintln(os.Stderr, "run returned:", err)
	os.Exit(1)
}
