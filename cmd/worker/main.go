// Command worker runs factos: the Temporal worker that dispatches commands,
// the River workers that run reactions and effects, and an HTTP server for
// health, readiness, metrics and River UI. It registers the ticket example
// domain; applications build their own binary from the factosfx modules.
//
// Usage:
//
//	worker [run]                 run until SIGINT/SIGTERM
//	worker migrate               apply migrations and exit
//	worker migrate status        print applied and pending migrations
//	worker demo tickets [flags]  run a concurrent ticket sale
//	worker lock-strategy         print or change the database's lock strategy
//	worker spec                  print the environment and HTTP contract as JSON
//	worker projections status    print the projections' checkpoints, lag and state
//	worker projections reset|rebuild NAME [-from POS]
//	worker projections skip NAME POS
//
// Configuration comes from the environment; `worker spec` lists every
// variable with its default.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "spec":
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(spec()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "run":
		return runWorker(ctx)
	case "migrate":
		return runMigrate(ctx, args)
	case "demo":
		return runDemo(ctx, args)
	case "lock-strategy":
		return runLockStrategy(ctx, args)
	case "projections":
		return runProjections(ctx, args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "worker: unknown command %q\n%s", cmd, usage)
	return 2
}

const usage = `usage:
  worker [run]                 run until SIGINT/SIGTERM
  worker migrate               apply migrations and exit
  worker migrate status        print applied and pending migrations
  worker demo tickets [flags]  run a concurrent ticket sale (see -h)
  worker lock-strategy [set NAME --writers-stopped]
                               print (or change) the database's lock strategy
  worker spec                  print the environment and HTTP contract as JSON
  worker projections status [-wait D] [-json]
                               print the projections' checkpoints, lag and state
  worker projections reset|rebuild NAME [-from POS] [-reason TEXT]
                               start a projection again from POS (default 0)
  worker projections skip NAME POS [-reason TEXT]
                               skip the event a projection is stuck at, recorded
`
