package tasks_test

import (
	"testing"
	"time"

	"github.com/beatlock/beat/tasks"
)

// TestBuiltinValidators checks the load-time messages for the built-in
// types: each must name the arg and say what to write.
func TestBuiltinValidators(t *testing.T) {
	type m = map[string]any
	type l = []any
	tests := []struct {
		name    string
		typ     string
		args    m
		wantErr string // "|"-separated parts; empty: valid
	}{
		// log
		{"log ok", "log", m{"message": "hi"}, ""},
		{"log level", "log", m{"message": "hi", "level": "WARN"}, ""},
		{"log missing message", "log", m{}, "args.message: required"},
		{"log message not a string", "log", m{"message": 5}, `args.message: got the number 5, want a string; quote it: "5"`},
		{"log bad level", "log", m{"message": "x", "level": "verbose"}, `args.level: "verbose" is not a level; use one of debug, info, warn, error`},
		{"log unknown arg", "log", m{"message": "x", "msg": "y"}, "args.msg: unknown argument; valid arguments: level, message"},

		// exec
		{"exec ok", "exec", m{"command": l{"sh", "-c", "echo hi"}, "env": m{"A": "b"}, "dir": "/tmp"}, ""},
		{"exec missing command", "exec", m{}, `args.command: required; write a list, e.g. command: [sh, -c, "echo hi"]`},
		{"exec null command", "exec", m{"command": nil}, "args.command: null; write a list"},
		{"exec string command", "exec", m{"command": "tar czf /b.tgz /data"}, `args.command: got the string "tar czf /b.tgz /data"; write a list|command: [sh, -c, "tar czf /b.tgz /data"]`},
		{"exec map command", "exec", m{"command": m{"a": 1}}, "args.command: got a map; write a list"},
		{"exec empty command", "exec", m{"command": l{}}, "args.command: empty list"},
		{"exec number element", "exec", m{"command": l{"sleep", 5}}, `args.command[1]: got the number 5, want a string; quote it: "5"`},
		{"exec empty program", "exec", m{"command": l{"", "x"}}, "args.command[0]: empty; it names the program to run"},
		{"exec NUL", "exec", m{"command": l{"echo", "a\x00b"}}, "args.command[1]: contains a NUL byte"},
		{"exec env not a map", "exec", m{"command": l{"true"}, "env": l{"A=b"}}, "args.env: got a list, want a map of strings"},
		{"exec env number", "exec", m{"command": l{"true"}, "env": m{"PORT": 8080}}, `args.env.PORT: got the number 8080, want a string; quote it: "8080"`},
		{"exec env bad name", "exec", m{"command": l{"true"}, "env": m{"A=B": "c"}}, `args.env: "A=B" is not a variable name`},
		{"exec env shadows BEAT_", "exec", m{"command": l{"true"}, "env": m{"BEAT_FENCING_TOKEN": "0"}}, "args.env.BEAT_FENCING_TOKEN: beat sets this variable"},
		{"exec empty dir", "exec", m{"command": l{"true"}, "dir": ""}, "args.dir: empty"},
		{"exec dir not a string", "exec", m{"command": l{"true"}, "dir": true}, "args.dir: got the boolean true, want a string"},
		{"exec unknown arg", "exec", m{"command": l{"true"}, "cmd": "x"}, "args.cmd: unknown argument; valid arguments: command, dir, env, kill_grace"},
		{"exec kill_grace", "exec", m{"command": l{"true"}, "kill_grace": "10s"}, ""},
		{"exec kill_grace compound", "exec", m{"command": l{"true"}, "kill_grace": "1m30s"}, ""},
		{"exec kill_grace 0s", "exec", m{"command": l{"true"}, "kill_grace": "0s"}, ""},
		{"exec kill_grace YAML 0", "exec", m{"command": l{"true"}, "kill_grace": 0}, ""},
		{"exec kill_grace Go duration", "exec", m{"command": l{"true"}, "kill_grace": 3 * time.Second}, ""},
		{"exec kill_grace negative", "exec", m{"command": l{"true"}, "kill_grace": "-1s"}, `args.kill_grace: "-1s" is negative; write a duration with a unit, e.g. kill_grace: 10s, or 0 for SIGKILL at once`},
		{"exec kill_grace negative Go duration", "exec", m{"command": l{"true"}, "kill_grace": -time.Second}, "args.kill_grace: -1s is negative; write a duration"},
		{"exec kill_grace no unit", "exec", m{"command": l{"true"}, "kill_grace": 5}, "args.kill_grace: got the number 5, which has no unit; write a duration with a unit, e.g. kill_grace: 10s"},
		{"exec kill_grace string without unit", "exec", m{"command": l{"true"}, "kill_grace": "5"}, `args.kill_grace: "5" is not a duration; write a duration with a unit`},
		{"exec kill_grace unparsable", "exec", m{"command": l{"true"}, "kill_grace": "soon"}, `args.kill_grace: "soon" is not a duration; write a duration with a unit, e.g. kill_grace: 10s, or 0 for SIGKILL at once`},
		{"exec kill_grace empty", "exec", m{"command": l{"true"}, "kill_grace": ""}, `args.kill_grace: "" is not a duration`},
		{"exec kill_grace null", "exec", m{"command": l{"true"}, "kill_grace": nil}, "args.kill_grace: null; omit it for the default 5s"},
		{"exec kill_grace boolean", "exec", m{"command": l{"true"}, "kill_grace": true}, "args.kill_grace: got the boolean true; write a duration"},
		{"exec kill_grace with other problems", "exec", m{"command": l{}, "kill_grace": "x"}, "args.command: empty list|args.kill_grace: \"x\" is not a duration"},
		{"exec every problem at once", "exec", m{"command": "x", "dir": 1, "shell": true}, "args.shell: unknown|args.command: got the string|args.dir: got the number 1"},

		{"exec Go types", "exec", m{"command": []string{"true"}, "env": map[string]string{"A": "b"}}, ""},
		{"exec Go types checked", "exec", m{"command": []string{""}, "env": map[string]string{"BEAT_TASK": "b"}}, "args.command[0]: empty|args.env.BEAT_TASK: beat sets"},
		{"exec YAML map with non-string keys", "exec", m{"command": l{"true"}, "env": map[any]any{1: "x"}}, ""},

		// http
		{"http ok", "http", m{"url": "https://example.com/hook", "method": "post", "headers": m{"X-A": "b"}, "body": "{}", "expect_status": l{200, 204.0}}, ""},
		{"http Go types", "http", m{"url": "http://x", "expect_status": []int{200}, "headers": map[string]string{"A": "b"}}, ""},
		{"http Go types checked", "http", m{"url": "http://x", "expect_status": []int{600}}, "args.expect_status[0]: 600 is not an HTTP status"},
		{"http missing url", "http", m{}, "args.url: required"},
		{"http ftp url", "http", m{"url": "ftp://x"}, `args.url: "ftp://x" is not an http or https URL`},
		{"http unparsable url", "http", m{"url": "http://[::1"}, `args.url: "http://[::1" is not a URL`},
		{"http no host", "http", m{"url": "http:///path"}, "has no host"},
		{"http bad method", "http", m{"url": "http://x", "method": "GE T"}, `args.method: "GE T" is not an HTTP method`},
		{"http bad status", "http", m{"url": "http://x", "expect_status": l{200, 99}}, "args.expect_status[1]: 99 is not an HTTP status (100-599)"},
		{"http status not a number", "http", m{"url": "http://x", "expect_status": l{"200"}}, `args.expect_status[0]: got the string "200", want an integer HTTP status`},
		{"http status fraction", "http", m{"url": "http://x", "expect_status": l{200.5}}, "args.expect_status[0]: got the number 200.5"},
		{"http status scalar", "http", m{"url": "http://x", "expect_status": 204}, "args.expect_status: got the number 204; write a list, e.g. expect_status: [204]"},
		{"http status empty", "http", m{"url": "http://x", "expect_status": l{}}, "args.expect_status: empty list; omit it to accept any 2xx"},
		{"http header number", "http", m{"url": "http://x", "headers": m{"X-Retry": 3}}, "args.headers.X-Retry: got the number 3"},
		{"http header newline", "http", m{"url": "http://x", "headers": m{"X-A": "a\r\nEvil: 1"}}, "args.headers.X-A: the value contains a control character"},
		{"http header bad name", "http", m{"url": "http://x", "headers": m{"X A": "a"}}, `args.headers: "X A" is not a valid header name`},
		{"http header reserved", "http", m{"url": "http://x", "headers": m{"idempotency-key": "k"}}, "args.headers.idempotency-key: beat sets this header"},
		{"http body not a string", "http", m{"url": "http://x", "body": m{"a": 1}}, "args.body: got a map, want a string"},
		{"http unknown arg", "http", m{"url": "http://x", "timeout": "5s"}, "args.timeout: unknown argument; valid arguments: body, expect_status, headers, method, url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tasks.Default().ValidateArgs(tt.typ, tt.args), tt.wantErr)
		})
	}
}
