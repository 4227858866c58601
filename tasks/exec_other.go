//go:build !unix

package tasks

import "os/exec"

// killProcessGroupOnCancel keeps exec.CommandContext's default, killing only
// the child: there is no portable process group to kill here.
func killProcessGroupOnCancel(*exec.Cmd) {}
