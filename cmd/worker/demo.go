package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/factos-go/factos"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/reactors"
)

// DemoSummary is what `worker demo tickets` prints.
type DemoSummary struct {
	Concert          string  `json:"concert"`
	Mode             string  `json:"mode"`
	Capacity         int     `json:"capacity"`
	Buyers           int     `json:"buyers"`
	Concurrency      int     `json:"concurrency"`
	Accepted         int64   `json:"accepted"`
	SoldOut          int64   `json:"sold_out"`
	Errors           int64   `json:"errors"`
	EventsRecorded   int     `json:"events_recorded"`
	EffectsCompleted int     `json:"effects_completed"`
	Seconds          float64 `json:"seconds"`
	CommandsPerSec   float64 `json:"commands_per_second"`
	OK               bool    `json:"ok"`
}

// demoCommand is `worker demo tickets`.
var demoCommand = factosfx.Command{
	CommandSpec: factosfx.CommandSpec{Name: "demo tickets", Args: []string{"demo", "tickets"},
		Description: "Run a concurrent ticket sale and print a JSON summary."},
	Synopsis: "demo tickets [flags]  run a concurrent ticket sale (see -h)",
	Run:      runDemo,
}

// runDemo runs a concurrent ticket sale against a migrated database and a
// running worker (which executes the workflows and the effects), and
// prints a JSON summary. It exits 1 unless exactly min(capacity, buyers)
// tickets sold and every sale's effect completed.
func runDemo(ctx context.Context, env *factosfx.CommandEnv, args []string) int {
	if len(args) == 0 || args[0] != "tickets" {
		const demoUsage = "usage: worker demo tickets [flags]\n\nThe one demo is tickets; `worker demo tickets -h` lists its flags.\n"
		if len(args) > 0 && factosfx.IsHelp(args[0]) {
			fmt.Print(demoUsage)
			return 0
		}
		fmt.Fprint(os.Stderr, demoUsage)
		return 2
	}
	fs := env.Flags("demo tickets", " [flags]")
	capacity := fs.Int("capacity", 100, "seats for sale")
	buyers := fs.Int("buyers", 300, "buyers racing for them")
	concurrency := fs.Int("concurrency", 32, "buyers at once")
	direct := fs.Bool("direct", false, "dispatch straight through the store instead of through Temporal workflows")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the effects to complete (0: do not wait)")
	concert := fs.String("concert", "", "concert id (default: a new random one)")
	if code, ok := env.Parse(fs, args[1:]); !ok {
		return code
	}
	if *capacity < 0 || *buyers < 1 || *concurrency < 1 {
		fmt.Fprintln(os.Stderr, "worker demo tickets: -capacity >= 0, -buyers >= 1 and -concurrency >= 1")
		return 2
	}
	cfg := env.Config()
	if cfg == nil {
		return 2
	}
	if *concert == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		*concert = "demo-" + hex.EncodeToString(b[:])
	}
	pool := env.Pool(ctx, cfg)
	if pool == nil {
		return 1
	}
	defer pool.Close()

	// The demo dispatches like the worker does: through the front door's
	// store, whose outbox enqueues the reaction jobs that the running
	// worker runs. This client is never started: it only dispatches.
	// Its reactors and commands are the domain's, registered as the
	// worker registers them.
	reg := reactors.NewRegistry(nil)
	if err := env.Domain.Reactors(reg, factosfx.DomainEnv{Pool: pool, Temporal: cfg.TemporalEnabled}); err != nil {
		return fail(err)
	}
	fc, err := factos.NewClient(pool, reg, &factos.Config{Store: &eventstore.Config{LockStrategy: cfg.LockStrategy}})
	if err != nil {
		return fail(err)
	}
	store := fc.Store()
	cmds, err := factosfx.NewCommandRegistry(store, env.Domain)
	if err != nil {
		return fail(err)
	}
	sched, _ := json.Marshal(tickets.ScheduleConcert{ConcertID: *concert, Capacity: *capacity})
	if _, err := cmds.Dispatch(ctx, tickets.CmdScheduleConcert, *concert+"/schedule", sched, nil); err != nil {
		return fail(err)
	}

	var buy func(ctx context.Context, i int) (bool, error)
	mode := "temporal"
	if *direct {
		mode = "direct"
		buy = func(ctx context.Context, i int) (bool, error) {
			payload, _ := json.Marshal(tickets.BuyTicket{ConcertID: *concert, BuyerID: fmt.Sprint(i)})
			_, err := cmds.Dispatch(ctx, tickets.CmdBuyTicket, fmt.Sprintf("%s/buy/%d", *concert, i), payload, nil)
			if errors.Is(err, tickets.ErrSoldOut) {
				return false, nil
			}
			return err == nil, err
		}
	} else {
		// The worker's own options: TLS and the API key included.
		opts, err := factosfx.TemporalClientOptions(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			return fail(err)
		}
		tc, err := client.Dial(opts)
		if err != nil {
			return fail(fmt.Errorf("cannot reach Temporal at %s (namespace %q): %w. Is the Temporal server running, and are TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE right? (-direct runs the demo without Temporal)",
				cfg.TemporalAddress, cfg.TemporalNamespace, err))
		}
		defer tc.Close()
		buy = func(ctx context.Context, i int) (bool, error) {
			run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("%s-buy-%d", *concert, i), TaskQueue: cfg.TemporalTaskQueue},
				tickets.BuyTicketWorkflow, tickets.BuyTicket{ConcertID: *concert, BuyerID: fmt.Sprint(i)})
			if err != nil {
				return false, err
			}
			var p tickets.Purchase
			err = run.Get(ctx, &p)
			return p.Sold, err
		}
	}

	sum := DemoSummary{Concert: *concert, Mode: mode, Capacity: *capacity, Buyers: *buyers, Concurrency: *concurrency}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range *concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= *buyers {
					return
				}
				sold, err := buy(ctx, i)
				switch {
				case err != nil:
					atomic.AddInt64(&sum.Errors, 1)
					fmt.Fprintf(os.Stderr, "buyer %d: %v\n", i, err)
				case sold:
					atomic.AddInt64(&sum.Accepted, 1)
				default:
					atomic.AddInt64(&sum.SoldOut, 1)
				}
			}
		})
	}
	wg.Wait()
	sum.Seconds = time.Since(start).Seconds()
	sum.CommandsPerSec = float64(*buyers) / sum.Seconds

	counts := func() error {
		return pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM factos_event_tags WHERE tag = $1 AND type = $2),
			(SELECT count(*) FROM river_job WHERE kind = $3 AND args->'args'->>'concert_id' = $4 AND state = 'completed')`,
			tickets.ConcertTag(*concert), tickets.TypeTicketSold, reactors.EffectKindPrefix+tickets.EffectAnnounceTicketSale, *concert,
		).Scan(&sum.EventsRecorded, &sum.EffectsCompleted)
	}
	deadline := time.Now().Add(*wait)
	for {
		if err := counts(); err != nil {
			return fail(err)
		}
		if int64(sum.EffectsCompleted) >= sum.Accepted || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := int64(min(*capacity, *buyers))
	sum.OK = sum.Errors == 0 && sum.Accepted == want && int64(sum.EventsRecorded) == want &&
		(*wait == 0 || int64(sum.EffectsCompleted) == want)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(sum)
	if !sum.OK {
		return 1
	}
	return 0
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "worker demo:", err)
	return 1
}
