package factosfx

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/factos-go/factos/eventstore"
)

const lockStrategyUsage = `usage:
  worker lock-strategy                 print the lock strategy the database records
  worker lock-strategy set NAME        record NAME (keys or table) as the database's strategy

Every process writing a database must use one lock strategy; the first to
use it records its own, and a worker configured with another refuses to
start. Changing it is safe ONLY WITH EVERY WRITER STOPPED: stop every worker
(and every application process that writes), run "worker lock-strategy set
NAME --writers-stopped", then start them all with LOCK_STRATEGY=NAME.
`

// runLockStrategy prints or changes the lock strategy the database records.
func (c *cli) runLockStrategy(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("lock-strategy", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), lockStrategyUsage) }
	stopped := fs.Bool("writers-stopped", false, "confirm that every writer of the database is stopped")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	var set eventstore.LockStrategy
	switch fs.Arg(0) {
	case "", "show":
	case "set":
		rest := fs.Args()[1:]
		// Accept the confirmation after the name too.
		if err := fs.Parse(rest[min(1, len(rest)):]); err != nil {
			return 2
		}
		if len(rest) == 0 {
			fmt.Fprint(os.Stderr, "worker lock-strategy set: missing NAME\n"+lockStrategyUsage)
			return 2
		}
		ls, err := eventstore.ParseLockStrategy(rest[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, "worker lock-strategy set:", err)
			return 2
		}
		if !*stopped {
			fmt.Fprintf(os.Stderr, "worker lock-strategy set: changing the strategy is safe only with every writer stopped.\n"+
				"Stop every worker and application process that writes this database, then run:\n"+
				"  worker lock-strategy set %s --writers-stopped\n", ls)
			return 2
		}
		set = ls
	default:
		fmt.Fprintf(os.Stderr, "worker lock-strategy: unknown argument %q\n%s", fs.Arg(0), lockStrategyUsage)
		return 2
	}
	_, pool, code := connect(ctx, "lock-strategy")
	if pool == nil {
		return code
	}
	defer pool.Close()
	if set != "" {
		before, err := eventstore.RecordedLockStrategy(ctx, pool)
		if err != nil {
			fmt.Fprintln(os.Stderr, "worker lock-strategy:", err)
			return 1
		}
		if err := eventstore.SetLockStrategy(ctx, pool, set); err != nil {
			fmt.Fprintln(os.Stderr, "worker lock-strategy:", err)
			return 1
		}
		fmt.Printf("lock strategy: %s (was %s); start every writer with LOCK_STRATEGY=%s\n", set, orNone(before), set)
		return 0
	}
	ls, err := eventstore.RecordedLockStrategy(ctx, pool)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker lock-strategy:", err)
		return 1
	}
	fmt.Printf("lock strategy: %s\n", orNone(ls))
	return 0
}

func orNone(ls eventstore.LockStrategy) string {
	if ls == "" {
		return "none recorded yet (the first writer records its own)"
	}
	return string(ls)
}
