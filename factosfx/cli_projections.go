package factosfx

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/projections"
)

const projectionsUsage = `usage:
  worker projections status [-wait D] [-json]
  worker projections reset NAME [-from POS] [-reason TEXT] [-by WHO]
  worker projections rebuild NAME [-from POS] [-reason TEXT] [-by WHO]
  worker projections skip NAME POS [-reason TEXT] [-by WHO]
`

// runProjections operates the domain's projections in the database: it
// needs no running worker (a rebuild with none runs the projection
// itself) and works beside running ones.
func (c *cli) runProjections(ctx context.Context, args []string) int {
	sub, fs, code, ok := c.subcommand(args, "projections", projectionsUsage)
	if !ok {
		return code
	}
	from := fs.Int64("from", 0, "reset, rebuild: start again after this position (0: from the first event)")
	reason := fs.String("reason", "", "reset, rebuild, skip: why, recorded")
	by := fs.String("by", operator(), "reset, rebuild, skip: who, recorded")
	wait := fs.Duration("wait", 0, "status: first wait up to this long until every projection has caught up with the log's head")
	asJSON := fs.Bool("json", false, "status: print JSON")
	pos, code, ok := parseInterleaved(fs, args[1:])
	if !ok {
		return code
	}
	want := map[string]int{"status": 0, "reset": 1, "rebuild": 1, "skip": 2}
	n, known := want[sub]
	if !known || len(pos) != n {
		fmt.Fprintf(os.Stderr, "worker projections %s: wrong arguments %q\n%s", sub, pos, projectionsUsage)
		return 2
	}
	if *from < 0 {
		fmt.Fprintf(os.Stderr, "worker projections %s: -from %d must not be negative\n", sub, *from)
		return 2
	}
	var skipAt eventstore.Position
	if sub == "skip" {
		p, err := strconv.ParseInt(pos[1], 10, 64)
		if err != nil || p < 1 {
			fmt.Fprintf(os.Stderr, "worker projections skip: POS %q must be a positive position\n", pos[1])
			return 2
		}
		skipAt = eventstore.Position(p)
	}
	cfg, pool, code := c.connectMigrated(ctx, "projections")
	if pool == nil {
		return code
	}
	defer pool.Close()
	client, err := c.projectionsClient(cfg, pool)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker projections:", err)
		return 1
	}

	opts := projections.ResetOpts{From: eventstore.Position(*from), By: *by, Reason: *reason}
	switch sub {
	case "status":
		return projectionStatus(ctx, client, *wait, *asJSON)
	case "reset":
		if err := client.Reset(ctx, pos[0], &opts); err != nil {
			return commandFailed(err)
		}
		fmt.Printf("%s reset to %d; the worker running it rebuilds it (`worker projections status` shows its progress)\n", pos[0], opts.From)
	case "rebuild":
		start := time.Now()
		// A rebuild that gets stuck on an event would wait for ever: stop
		// waiting, say where and why, and name the way past it. The
		// projection stays reset; the workers go on rebuilding it.
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var stuckAt atomic.Pointer[projections.Status] // Progress runs in a goroutine of its own
		reached, err := client.Rebuild(rctx, pos[0], &projections.RebuildOpts{ResetOpts: opts, Progress: func(st projections.Status) {
			fmt.Fprintf(os.Stderr, "%s: at %d of %d (%s)\n", st.Name, st.Position, st.Head, st.State)
			if st.State == projections.StateStuck && stuckAt.CompareAndSwap(nil, &st) {
				cancel()
			}
		}})
		if stuck := stuckAt.Load(); stuck != nil {
			fmt.Fprintf(os.Stderr, "worker projections rebuild: %s is stuck at position %d after %d attempts: %s\n"+
				"fix the cause (the worker retries it), or skip the event: worker projections skip %s %d -reason TEXT\n",
				stuck.Name, stuck.FailingPosition, stuck.Attempts, stuck.LastError, stuck.Name, stuck.FailingPosition)
			return 3
		}
		if err != nil {
			return commandFailed(err)
		}
		fmt.Printf("%s rebuilt from %d to %d in %s\n", pos[0], opts.From, reached, time.Since(start).Round(time.Millisecond))
	case "skip":
		sk, err := client.Skip(ctx, pos[0], skipAt, &projections.SkipOpts{By: *by, Reason: *reason})
		if err != nil {
			return commandFailed(err)
		}
		fmt.Printf("%s skips position %d (%s, event %s), by %s at %s\n", sk.Projection, sk.Position, sk.EventType, sk.EventID, sk.By, sk.At.Format(time.RFC3339))
		if sk.Error != "" {
			fmt.Printf("it was stuck there with: %s\n", sk.Error)
		} else {
			fmt.Printf("it was not stuck there: the event will never be applied\n")
		}
	}
	return 0
}

// projectionsClient is a client of the domain's projections that runs
// nothing by itself.
func (c *cli) projectionsClient(cfg *Config, pool *pgxpool.Pool) (*projections.Client, error) {
	store, err := eventstore.New(pool, &eventstore.Config{LockStrategy: cfg.LockStrategy})
	if err != nil {
		return nil, err
	}
	domain := c.domain
	reg, err := domain.ProjectionRegistry(DomainEnv{Pool: pool, Temporal: cfg.TemporalEnabled})
	if err != nil {
		return nil, err
	}
	pc := ProjectionsConfig(cfg, nil, NewLogger(cfg))
	pc.Owner = operator()
	return projections.New(store, reg, pc)
}

// projectionStatus prints the status; it exits 3 when a projection is
// stuck or (with -wait) has not caught up.
func projectionStatus(ctx context.Context, client *projections.Client, wait time.Duration, asJSON bool) int {
	code := 0
	if wait > 0 {
		sts, err := client.Status(ctx)
		if err != nil {
			return commandFailed(err)
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		for _, st := range sts {
			if err := client.WaitFor(wctx, st.Name, st.Head); err != nil {
				fmt.Fprintln(os.Stderr, "worker projections status:", err)
				code = 3
			}
		}
		cancel()
	}
	sts, err := client.Status(ctx)
	if err != nil {
		return commandFailed(err)
	}
	skips := map[string][]projections.Skip{}
	for _, st := range sts {
		if st.State == projections.StateStuck {
			code = 3
		}
		if st.Skipped > 0 {
			if skips[st.Name], err = client.Skips(ctx, st.Name); err != nil {
				return commandFailed(err)
			}
		}
	}
	if asJSON {
		type withSkips struct {
			projections.Status
			Skips []projections.Skip `json:"skips,omitempty"`
		}
		out := make([]withSkips, len(sts))
		for i, st := range sts {
			out[i] = withSkips{st, skips[st.Name]}
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return commandFailed(err)
		}
		return code
	}
	printStatus(os.Stdout, sts, skips)
	return code
}

func printStatus(out io.Writer, sts []projections.Status, skips map[string][]projections.Skip) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATE\tCHECKPOINT\tHEAD\tLAG EVENTS\tLAG SECONDS\tAPPLIED\tRUNNING\tOWNER\tSKIPPED")
	for _, st := range sts {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%.3f\t%d\t%v\t%s\t%d\n", st.Name, st.State, st.Position, st.Head, st.LagEvents,
			st.LagSeconds, st.Applied, st.Running, st.Owner, st.Skipped)
	}
	_ = w.Flush()
	for _, st := range sts {
		if st.State == projections.StateStuck {
			at := fmt.Sprintf("position %d", st.FailingPosition)
			if st.FailingPosition == 0 {
				at = "reading the log"
			}
			fmt.Fprintf(out, "\n%s is stuck at %s since %s, %d attempts, next at %s:\n  %s\n  `worker projections skip %s %d` skips it once the cause is known.\n",
				st.Name, at, st.FailingSince.Format(time.RFC3339), st.Attempts, st.NextAttempt.Format(time.RFC3339), st.LastError, st.Name, st.FailingPosition)
		}
		if r := st.LastReset; r != nil {
			fmt.Fprintf(out, "\n%s was last reset to %d by %s at %s", st.Name, r.From, r.By, r.At.Format(time.RFC3339))
			if r.Reason != "" {
				fmt.Fprintf(out, " (%s)", r.Reason)
			}
			fmt.Fprintln(out)
		}
		for _, sk := range skips[st.Name] {
			fmt.Fprintf(out, "\n%s skips %d (%s) by %s at %s", st.Name, sk.Position, sk.EventType, sk.By, sk.At.Format(time.RFC3339))
			if sk.Reason != "" {
				fmt.Fprintf(out, ": %s", sk.Reason)
			}
			if sk.Error != "" {
				fmt.Fprintf(out, "\n  stuck with: %s", sk.Error)
			}
			fmt.Fprintln(out)
		}
	}
}

// parseInterleaved parses flags given before, between or after the
// positional arguments (flag stops at the first of those), and returns
// the positional ones. ok says whether the command goes on; otherwise
// code is its exit code: 0 after -h (the usage printed on stdout), 2
// after a bad flag (the problem and the usage printed on stderr).
func parseInterleaved(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	fs.SetOutput(io.Discard)
	defer fs.SetOutput(os.Stderr)
	for {
		if err := fs.Parse(args); err != nil {
			return nil, parseFailed(fs, err), false
		}
		if fs.NArg() == 0 {
			return pos, 0, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// operator names who runs the command, for the records of resets and
// skips: user@host.
func operator() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// commandFailed prints err and returns exit code 1.
func commandFailed(err error) int {
	fmt.Fprintln(os.Stderr, "worker:", err)
	return 1
}
