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
read or write it records its own (a status command too), and a worker configured with another refuses to
start. Changing it is safe ONLY WITH EVERY WRITER STOPPED: stop every worker
(and every application process that writes), run "worker lock-strategy set
NAME --writers-stopped", then start them all with LOCK_STRATEGY=NAME.
`

// runLockStrategy prints or changes the lock strategy the database records.
func (c *cli) runLockStrategy(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("lock-strategy", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), lockStrategyUsage) }
	stopped := fs.Bool("writers-stopped", false, "confirm that every writer of the database is stopped")
	// The flag goes before, between or after the words.
	words, code, ok := parseInterleaved(fs, args)
	if !ok {
		return code
	}
	var set eventstore.LockStrategy
	switch {
	case len(words) == 0, len(words) == 1 && words[0] == "show":
	case words[0] == "set" && len(words) == 2:
		ls, err := eventstore.ParseLockStrategy(words[1])
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
	case words[0] == "set" && len(words) == 1:
		fmt.Fprint(os.Stderr, "worker lock-strategy set: missing NAME\n"+lockStrategyUsage)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "worker lock-strategy: unexpected arguments %q\n%s", words, lockStrategyUsage)
		return 2
	}
	_, pool, code := c.connectMigrated(ctx, "lock-strategy")
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
		return "none recorded yet (the first process to read or write it records its own)"
	}
	return string(ls)
}
