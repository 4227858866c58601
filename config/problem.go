package config

import (
	"fmt"
	"strings"
)

// ValidationError lists every problem found in a file.
type ValidationError struct{ Problems []Problem }

// Error returns one problem per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Problem is one thing wrong with a file. Line is 0 when the problem concerns
// no line, like a missing setting. A problem with a value taken from the
// environment has File "env NAME", NAME being the variable, and Line 0.
type Problem struct {
	File string
	Line int
	Task string // the task's name, when the problem is in a named task
	Msg  string
}

// String returns "FILE:LINE: task "NAME": MSG", leaving out the parts that
// are not set.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Task != "" {
		fmt.Fprintf(&b, "task %q: ", p.Task)
	}
	b.WriteString(p.Msg)
	return b.String()
}
