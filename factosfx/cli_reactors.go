package factosfx

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/reactors"
	"github.com/factos-go/factos/temporaleffects"
)

const reactorsUsage = `usage:
  worker reactors status [-json]
  worker reactors replay NAME [-from POS] [-name CHECKPOINT]
  worker reactors reset NAME [-from POS] [-effects] [-no-replay]
`

// runReactors operates the domain's reactors in the database, beside
// running workers, which run what it enqueues.
func (c *cli) runReactors(ctx context.Context, args []string) int {
	sub, fs, code, ok := c.subcommand(args, "reactors", reactorsUsage)
	if !ok {
		return code
	}
	from := fs.Int64("from", 0, "replay, reset: records after this position (0: from the first)")
	name := fs.String("name", "", "replay: store progress under this checkpoint name, so that a rerun resumes")
	effects := fs.Bool("effects", false, "reset: also forget the effect keys, so that the effects run again (their handlers must be idempotent)")
	noReplay := fs.Bool("no-replay", false, "reset: only forget; enqueue nothing (run \"worker reactors replay\" later)")
	asJSON := fs.Bool("json", false, "status: print JSON")
	pos, code, ok := parseInterleaved(fs, args[1:])
	if !ok {
		return code
	}
	want := map[string]int{"status": 0, "replay": 1, "reset": 1}
	n, known := want[sub]
	if !known || len(pos) != n || *from < 0 {
		fmt.Fprintf(os.Stderr, "worker reactors %s: wrong arguments %q\n%s", sub, pos, reactorsUsage)
		return 2
	}
	cfg, pool, code := c.connectMigrated(ctx, "reactors")
	if pool == nil {
		return code
	}
	defer pool.Close()
	reg, store, err := c.reactorRegistry(cfg, pool)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker reactors:", err)
		return 1
	}
	failed := func(err error) int {
		fmt.Fprintln(os.Stderr, "worker reactors:", err)
		return 1
	}
	switch sub {
	case "status":
		sts, err := reg.ReactorStatuses(ctx, store)
		if err != nil {
			return failed(err)
		}
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(sts); err != nil {
				return failed(err)
			}
			return 0
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tQUEUE\tPOSITION\tHEAD\tUNREACTED\tREACTED\tPENDING JOBS\tDISCARDED JOBS")
		for _, st := range sts {
			unreacted := fmt.Sprint(st.Unreacted)
			if st.UnreactedCapped {
				unreacted += "+"
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%d\t%d\t%d\n", st.Name, st.Queue, st.Position, st.Head, unreacted, st.Reacted, st.PendingJobs, st.DiscardedJobs)
		}
		_ = w.Flush()
	case "replay":
		res, err := reg.Replay(ctx, store, reactors.ReplayOpts{Reactor: pos[0], From: eventstore.Position(*from), Name: *name})
		if err != nil {
			return failed(err)
		}
		fmt.Printf("%s: enqueued %d reactions, skipped %d already done, up to position %d; running workers run them\n", pos[0], res.Enqueued, res.Skipped, res.Next)
	case "reset":
		res, err := reg.ResetReactor(ctx, store, pos[0], &reactors.ResetOpts{From: eventstore.Position(*from), Effects: *effects})
		if err != nil {
			return failed(err)
		}
		fmt.Printf("%s reset after position %d: forgot %d reactions, %d effect keys and %d replay checkpoints\n", pos[0], *from, res.Reactions, res.Effects, res.Replays)
		if *noReplay {
			return 0
		}
		rp, err := reg.Replay(ctx, store, reactors.ReplayOpts{Reactor: pos[0], From: eventstore.Position(*from)})
		if err != nil {
			return failed(err)
		}
		fmt.Printf("%s: enqueued %d reactions up to position %d; running workers run them\n", pos[0], rp.Enqueued, rp.Next)
	}
	return 0
}

// reactorRegistry registers the domain's reactors as `worker run` does,
// for their names and subscriptions; it runs nothing. The Temporal effects
// are registered without a client when Temporal is enabled, so that the
// reactors that plan them register too.
func (c *cli) reactorRegistry(cfg *Config, pool *pgxpool.Pool) (*reactors.Registry, *eventstore.Store, error) {
	store, err := eventstore.New(pool, &eventstore.Config{LockStrategy: cfg.LockStrategy})
	if err != nil {
		return nil, nil, err
	}
	reg := reactors.NewRegistry(nil)
	if cfg.TemporalEnabled {
		if err := temporaleffects.Add(reg, temporaleffects.Adapter{TaskQueue: cfg.TemporalTaskQueue}, nil); err != nil {
			return nil, nil, err
		}
	}
	domain := c.domain
	if domain.Reactors != nil {
		if err := domain.Reactors(reg, DomainEnv{Pool: pool, Temporal: cfg.TemporalEnabled}); err != nil {
			return nil, nil, fmt.Errorf("error registering reactors: %w", err)
		}
	}
	return reg, store, nil
}
