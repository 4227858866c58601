package tasks

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// entry is what a Registry keeps per task type.
type entry struct {
	fn       Func
	validate func(args map[string]any) error
}

// Option configures a task type at registration.
type Option func(*entry)

// WithArgs sets a validator called at config load time for every task of
// this type, so that bad args stop the schedule from loading instead of
// failing a run days later. It receives the task's args (never nil) and
// should report every problem it finds, e.g. with errors.Join, each message
// naming the arg as args.<name> and saying what to write instead.
func WithArgs(validate func(args map[string]any) error) Option {
	return func(e *entry) { e.validate = validate }
}

// Registry maps task type names to their Funcs. It is safe for concurrent
// use. The zero value is an empty registry ready to use.
type Registry struct {
	mu      sync.RWMutex
	entries map[string]entry
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{}
}

// Register adds a task type. It returns an error on an empty name, a nil fn,
// or a name already registered.
func (r *Registry) Register(name string, fn Func, opts ...Option) error {
	if name == "" {
		return errors.New("tasks: register: empty task type name; pass the name the schedule's `task:` field will use")
	}
	if fn == nil {
		return fmt.Errorf("tasks: register %q: nil Func; pass the function that runs the task", name)
	}
	e := entry{fn: fn}
	for _, opt := range opts {
		if opt != nil {
			opt(&e)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.entries[name]; dup {
		return fmt.Errorf("tasks: register %q: a task type of that name is already registered; choose another name", name)
	}
	if r.entries == nil {
		r.entries = make(map[string]entry)
	}
	r.entries[name] = e
	return nil
}

// Lookup returns the Func registered under name.
func (r *Registry) Lookup(name string) (Func, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[name]
	return e.fn, ok
}

// Names returns the registered type names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.entries))
}

// ValidateArgs checks args for a task of type typ, as the config loader does
// for every task. It fails if typ is not registered (the error lists the
// registered names) or if the type's validator rejects args; a type
// registered without [WithArgs] accepts any args.
func (r *Registry) ValidateArgs(typ string, args map[string]any) (err error) {
	r.mu.RLock()
	e, ok := r.entries[typ]
	r.mu.RUnlock()
	if !ok {
		return r.unknownTypeError(typ)
	}
	if e.validate == nil {
		return nil
	}
	if args == nil {
		args = map[string]any{}
	}
	// A validator is code written against arbitrary user YAML; a panic in it
	// must become a load error rather than take the process down.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("task type %q: its args validator panicked: %v; this is a bug in the program that registered it", typ, p)
		}
	}()
	return e.validate(args)
}

func (r *Registry) unknownTypeError(typ string) error {
	names := r.Names()
	if len(names) == 0 {
		return fmt.Errorf("unknown task type %q: no task types are registered", typ)
	}
	return fmt.Errorf("unknown task type %q; registered types: %s", typ, strings.Join(names, ", "))
}

// RegisterBuiltins registers the built-in task types log, exec and http.
func RegisterBuiltins(r *Registry) error {
	return errors.Join(
		r.Register("log", runLog, WithArgs(validateLogArgs)),
		r.Register("exec", runExec, WithArgs(validateExecArgs)),
		r.Register("http", runHTTP, WithArgs(validateHTTPArgs)),
	)
}

var defaultRegistry = sync.OnceValue(func() *Registry {
	r := NewRegistry()
	if err := RegisterBuiltins(r); err != nil {
		// An empty registry cannot clash, so this is a bug in this package.
		panic(err)
	}
	return r
})

// Default returns the process-wide registry, with the built-ins already
// registered. The beat CLI resolves task types against it.
func Default() *Registry {
	return defaultRegistry()
}

// Register adds fn to Default(). It panics on an empty name, nil fn or a
// duplicate, like http.Handle: registration happens in a program's init or
// main, and a clash is a programming error that must not go unnoticed.
func Register(name string, fn Func, opts ...Option) {
	if err := Default().Register(name, fn, opts...); err != nil {
		panic(err)
	}
}
