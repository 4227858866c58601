package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/beatlock/beat/tasks"
)

func nop(context.Context, tasks.Run) error { return nil }

func TestRegistryRegister(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		fn      tasks.Func
		wantErr string // empty: success
	}{
		{name: "new name", typ: "report", fn: nop},
		{name: "empty name", typ: "", fn: nop, wantErr: "empty task type name"},
		{name: "nil func", typ: "report", fn: nil, wantErr: "nil Func"},
		{name: "duplicate", typ: "taken", fn: nop, wantErr: `"taken": a task type of that name is already registered`},
		{name: "names are case-sensitive", typ: "Taken", fn: nop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tasks.NewRegistry()
			if err := r.Register("taken", nop); err != nil {
				t.Fatalf("setup: %v", err)
			}
			err := r.Register(tt.typ, tt.fn)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Register(%q) = %v, want nil", tt.typ, err)
				}
				if _, ok := r.Lookup(tt.typ); !ok {
					t.Fatalf("Lookup(%q) after Register: not found", tt.typ)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Register(%q) = %v, want error containing %q", tt.typ, err, tt.wantErr)
			}
			if got := r.Names(); !slices.Equal(got, []string{"taken"}) {
				t.Fatalf("a failed Register changed the registry: Names() = %q", got)
			}
		})
	}
}

func TestRegistryLookup(t *testing.T) {
	var r tasks.Registry // the zero value must be usable
	called := ""
	if err := r.Register("a", func(_ context.Context, run tasks.Run) error {
		called = run.Task
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		typ    string
		wantOK bool
	}{
		{"a", true},
		{"b", false},
		{"", false},
		{"A", false},
	}
	for _, tt := range tests {
		fn, ok := r.Lookup(tt.typ)
		if ok != tt.wantOK || (fn != nil) != tt.wantOK {
			t.Errorf("Lookup(%q) = (fn != nil: %t, %t), want ok %t", tt.typ, fn != nil, ok, tt.wantOK)
		}
		if ok {
			if err := fn(context.Background(), tasks.Run{Task: "t1"}); err != nil || called != "t1" {
				t.Errorf("looked-up fn: err %v, saw task %q; want the registered fn to run", err, called)
			}
		}
	}
}

func TestRegistryNamesSorted(t *testing.T) {
	tests := []struct {
		register []string
		want     []string
	}{
		{nil, []string{}},
		{[]string{"c", "a", "b"}, []string{"a", "b", "c"}},
		{[]string{"http", "exec", "Log", "log"}, []string{"Log", "exec", "http", "log"}},
	}
	for _, tt := range tests {
		r := tasks.NewRegistry()
		for _, n := range tt.register {
			if err := r.Register(n, nop); err != nil {
				t.Fatal(err)
			}
		}
		if got := r.Names(); !slices.Equal(got, tt.want) {
			t.Errorf("after registering %q: Names() = %q, want %q", tt.register, got, tt.want)
		}
	}
}

func TestRegistryValidateArgs(t *testing.T) {
	r := tasks.NewRegistry()
	var gotArgs map[string]any
	mustRegister(t, r, "strict", nop, tasks.WithArgs(func(args map[string]any) error {
		gotArgs = args
		if _, ok := args["x"]; !ok {
			return errors.New("args.x: required")
		}
		return nil
	}))
	mustRegister(t, r, "lax", nop)
	mustRegister(t, r, "nil-option", nop, nil, tasks.WithArgs(nil))
	mustRegister(t, r, "buggy", nop, tasks.WithArgs(func(args map[string]any) error {
		_ = args["list"].([]any)[3] // a validator bug on unexpected input
		return nil
	}))

	tests := []struct {
		name    string
		typ     string
		args    map[string]any
		wantErr string
	}{
		{"unknown type lists names", "nope", nil, `unknown task type "nope"; registered types: buggy, lax, nil-option, strict`},
		{"validator accepts", "strict", map[string]any{"x": 1}, ""},
		{"validator rejects", "strict", map[string]any{}, "args.x: required"},
		{"nil args reach validator as empty map", "strict", nil, "args.x: required"},
		{"no validator accepts anything", "lax", map[string]any{"anything": []any{1}}, ""},
		{"nil options ignored", "nil-option", map[string]any{"y": 2}, ""},
		{"validator panic becomes error", "buggy", map[string]any{"list": "x"}, `task type "buggy": its args validator panicked`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotArgs = nil
			err := r.ValidateArgs(tt.typ, tt.args)
			checkErr(t, err, tt.wantErr)
			if tt.typ == "strict" && gotArgs == nil {
				t.Errorf("validator got nil args, want a non-nil map")
			}
		})
	}

	if err := tasks.NewRegistry().ValidateArgs("log", nil); err == nil || !strings.Contains(err.Error(), "no task types are registered") {
		t.Errorf("empty registry: ValidateArgs = %v, want it to say none are registered", err)
	}
}

func TestRegisterBuiltinsTwice(t *testing.T) {
	r := tasks.NewRegistry()
	if err := tasks.RegisterBuiltins(r); err != nil {
		t.Fatalf("first RegisterBuiltins: %v", err)
	}
	err := tasks.RegisterBuiltins(r)
	for _, n := range []string{"log", "exec", "http"} {
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q: a task type of that name is already registered", n)) {
			t.Errorf("second RegisterBuiltins = %v, want a duplicate error for %q", err, n)
		}
	}
}

func TestDefaultHasBuiltins(t *testing.T) {
	if first, second := tasks.Default(), tasks.Default(); first != second {
		t.Fatal("Default() returned different registries")
	}
	names := tasks.Default().Names()
	for _, want := range []string{"exec", "http", "log"} {
		if _, ok := tasks.Default().Lookup(want); !ok || !slices.Contains(names, want) {
			t.Errorf("Default() lacks built-in %q; Names() = %q", want, names)
		}
	}
}

var packageRegisterRuns atomic.Int64

func TestPackageRegister(t *testing.T) {
	// Default() is process-wide and outlives one run of this test under
	// -count, so each run needs a name of its own.
	fresh := fmt.Sprint("tasks_test.package-register-", packageRegisterRuns.Add(1))
	tests := []struct {
		name      string
		typ       string
		fn        tasks.Func
		wantPanic string // empty: must not panic
	}{
		{"new name", fresh, nop, ""},
		{"duplicate of a built-in", "exec", nop, `"exec": a task type of that name is already registered`},
		{"duplicate of a user type", fresh, nop, "already registered"},
		{"empty name", "", nop, "empty task type name"},
		{"nil func", "tasks_test.nil", nil, "nil Func"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := catchPanic(func() { tasks.Register(tt.typ, tt.fn) })
			if tt.wantPanic == "" {
				if got != "" {
					t.Fatalf("Register(%q) panicked: %s", tt.typ, got)
				}
				if _, ok := tasks.Default().Lookup(tt.typ); !ok {
					t.Fatalf("Register(%q) did not add it to Default()", tt.typ)
				}
				return
			}
			if !strings.Contains(got, tt.wantPanic) {
				t.Fatalf("Register(%q) panic = %q, want one containing %q", tt.typ, got, tt.wantPanic)
			}
		})
	}
}

// TestRegistryConcurrent gives the race detector something to find if the
// registry's locking is wrong.
func TestRegistryConcurrent(t *testing.T) {
	r := tasks.NewRegistry()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprint("t", i)
			errs <- r.Register(name, nop)
			r.Lookup(name)
			r.Names()
			_ = r.ValidateArgs(name, nil)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := len(r.Names()); got != n {
		t.Errorf("after %d concurrent registrations, Names() has %d", n, got)
	}
}

func mustRegister(t *testing.T, r *tasks.Registry, name string, fn tasks.Func, opts ...tasks.Option) {
	t.Helper()
	if err := r.Register(name, fn, opts...); err != nil {
		t.Fatal(err)
	}
}

func catchPanic(f func()) (msg string) {
	defer func() {
		if p := recover(); p != nil {
			msg = fmt.Sprint(p)
		}
	}()
	f()
	return ""
}

// checkErr fails unless err is nil when want is empty, or contains each
// "|"-separated part of want.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("err = nil, want one containing %q", want)
	}
	for _, part := range strings.Split(want, "|") {
		if !strings.Contains(err.Error(), part) {
			t.Fatalf("err = %v\nwant it to contain %q", err, part)
		}
	}
}
