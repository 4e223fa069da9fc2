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
//	worker effects status|list   print effects, and halted ordering keys
//	worker effects retry|skip    run a failed effect again, or skip it
//	worker reactors status       print each reactor's ledger position, lag and jobs
//	worker reactors replay NAME [-from POS]
//	worker reactors reset NAME [-from POS] [-effects]
//
// Configuration comes from the environment; `worker spec` lists every
// variable with its default.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/factos-go/factos/factosfx"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Print(usage)
		return 0
	}
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "spec":
		if code, ok := parseFlags(newFlags("spec", ""), args); !ok {
			return code
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(spec()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "run":
		if code, ok := parseFlags(newFlags("run", ""), args); !ok {
			return code
		}
		return runWorker(ctx)
	case "migrate":
		return runMigrate(ctx, args)
	case "demo":
		return runDemo(ctx, args)
	case "lock-strategy":
		return runLockStrategy(ctx, args)
	case "projections":
		return runProjections(ctx, args)
	case "effects":
		return runEffects(ctx, args)
	case "reactors":
		return runReactors(ctx, args)
	case "help":
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
  worker effects status [-json]
                               effect jobs by kind and state; halted ordering keys
  worker effects list [-id JOB] [-effect KEY] [-kind K] [-key ORDERING_KEY] [-state S]
                               list effects, newest first
  worker effects retry|skip (EFFECT_KEY | -id JOB)
                               run a failed effect again, or go on without it
  worker reactors status [-json]
                               print each reactor's ledger position, lag and jobs
  worker reactors replay NAME [-from POS] [-name CHECKPOINT]
                               enqueue the reactions NAME has not run after POS
  worker reactors reset NAME [-from POS] [-effects] [-no-replay]
                               forget NAME's reactions after POS and run them again

Configuration comes from the environment; ` + "`worker spec`" + ` lists every
variable with its default. ` + "`worker COMMAND -h`" + ` describes a command.
`

// newFlags returns the flag set of a subcommand (its name as in
// factosfx.Commands), whose usage says what the command does.
func newFlags(name, argsSyntax string) *flag.FlagSet {
	fs := flag.NewFlagSet("worker "+name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: worker %s%s\n\n", name, argsSyntax)
		for _, c := range factosfx.Commands {
			if c.Name == name {
				fmt.Fprintf(out, "%s\n", c.Description)
			}
		}
		fmt.Fprintln(out, "Configuration comes from the environment; `worker spec` lists every variable with its default.")
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(out, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses a subcommand's arguments. -h prints the command's
// usage on stdout and ends it with exit code 0; a bad flag or a stray
// argument prints the problem and the usage on stderr, exit code 2. ok
// says whether the command should go on.
func parseFlags(fs *flag.FlagSet, args []string, allowArgs ...string) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 && !slices.Contains(allowArgs, fs.Arg(0)) {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(os.Stdout)
		fs.Usage()
		return 0, false
	case err != nil:
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
		fs.SetOutput(os.Stderr)
		fs.Usage()
		return 2, false
	}
	fs.SetOutput(os.Stderr)
	return 0, true
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }
