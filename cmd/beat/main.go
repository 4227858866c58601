// Command beat runs a schedule of tasks across replicas, each tick once.
// It is a thin main over package cli; see there, and the README.
package main

import (
	"context"
	"os"

	"github.com/beatlock/beat/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:]))
}
