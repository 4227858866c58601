// Command beat runs a schedule of tasks across replicas, each tick once.
// It is a thin main over package cli; see there, and the README.
package main

import (
	"context"
	"os"
	// Zone names in schedules must resolve the same on every replica, also
	// in images that ship no zoneinfo.
	_ "time/tzdata"

	"github.com/beatlock/beat/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:]))
}
