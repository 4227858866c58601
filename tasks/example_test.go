package tasks_test

import (
	"context"
	"fmt"
	"time"

	"github.com/beatlock/beat/tasks"
)

func ExampleRegistry() {
	r := tasks.NewRegistry()
	err := r.Register("greet", func(ctx context.Context, run tasks.Run) error {
		var args struct {
			Name string `json:"name"`
		}
		if err := run.DecodeArgs(&args); err != nil {
			return err
		}
		fmt.Printf("hello, %s (tick %s, token %d)\n", args.Name, run.ScheduledAt.Format(time.RFC3339), run.FencingToken)
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	fn, ok := r.Lookup("greet")
	fmt.Println(r.Names(), ok)
	_ = fn(context.Background(), tasks.Run{
		Task:         "morning",
		Type:         "greet",
		Args:         map[string]any{"name": "world"},
		ScheduledAt:  time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC),
		FencingToken: 3,
	})
	fmt.Println(fn(context.Background(), tasks.Run{Task: "typo", Args: map[string]any{"nmae": "x"}}))
	// Output:
	// [greet] true
	// hello, world (tick 2026-11-27T07:00:00Z, token 3)
	// task "typo": args.nmae: unknown argument; valid arguments: name
}
