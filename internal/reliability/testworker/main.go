// Command testworker is the worker of the reliability suite: the factosfx
// modules with the ticket domain plus a chaos reactor whose effects are
// slow (CHAOS_SLOW_MS), hang past their timeout, or keep failing, so that
// the suite can kill and restart workers while effects run; and, with
// CHAOS_PROJECTION_MS, a chaos projection whose batches hold their
// transaction open that long after writing, so that the suite can kill the
// worker in the middle of one; and, with CHAOS_ORDERED_MS, a chaos reactor
// whose ordered effects (one per sale, in order per buyer) record what they
// ran and hold their transaction open that long, so that the suite can
// kill the worker in the middle of one.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"

	"github.com/factos-go/factos/activities"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/projections"
	"github.com/factos-go/factos/reactors"
)

// Schema of the chaos effects' ledger: one row per effect key, and how many
// times the handler ran for it; the chaos projection's view: one row per
// applied event, without uniqueness, so that an event applied twice shows
// as two rows; and the ordered effects' record: one row per effect key, in
// the order their transactions took seq numbers.
var Schema = []string{`CREATE TABLE IF NOT EXISTS chaos_effects (
    key  text PRIMARY KEY,
    runs integer NOT NULL DEFAULT 1
)`, `CREATE TABLE IF NOT EXISTS chaos_projection (
    seq      bigserial PRIMARY KEY,
    position bigint NOT NULL
)`, `CREATE TABLE IF NOT EXISTS chaos_ordered (
    effect_key   text PRIMARY KEY,
    ordering_key text NOT NULL,
    position     bigint NOT NULL,
    seq          bigserial NOT NULL
)`}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		os.Exit(migrate())
	}
	cfg, err := factosfx.LoadConfig(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	slow, _ := strconv.Atoi(os.Getenv("CHAOS_SLOW_MS"))
	hold, _ := strconv.Atoi(os.Getenv("CHAOS_PROJECTION_MS"))
	ordered, _ := strconv.Atoi(os.Getenv("CHAOS_ORDERED_MS"))
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	fx.New(factosfx.Options(cfg, domain(ms(slow), ms(hold), ms(ordered)))).Run()
}

func migrate() int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()
	for _, sql := range Schema {
		if _, err := pool.Exec(ctx, sql); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func domain(slow, hold, ordered time.Duration) factosfx.Domain {
	codec := tickets.NewCodec()
	return factosfx.Domain{
		Name: "chaos",
		Projections: func(reg *projections.Registry, _ factosfx.DomainEnv) error {
			if err := tickets.RegisterProjections(reg, codec); err != nil {
				return err
			}
			if hold == 0 {
				return nil
			}
			return projections.AddProjection(reg, projections.Projection[tickets.Event]{
				Name: "chaos", Codec: codec, Query: eventstore.NewQuery(eventstore.Types(tickets.TypeTicketSold)),
				Apply: func(ctx context.Context, tx pgx.Tx, records []eventstore.Record[tickets.Event]) error {
					positions := make([]int64, len(records))
					for i, r := range records {
						positions[i] = int64(r.Position)
					}
					if _, err := tx.Exec(ctx, `INSERT INTO chaos_projection (position) SELECT unnest($1::int8[])`, positions); err != nil {
						return err
					}
					// Written, not committed: the window the suite kills in.
					_, err := tx.Exec(ctx, `SELECT pg_sleep($1::float8) /* chaos projection */`, hold.Seconds())
					return err
				},
			})
		},
		Reactors: func(reg *reactors.Registry, env factosfx.DomainEnv) error {
			if err := tickets.RegisterReactions(reg, codec, env.Pool); err != nil {
				return err
			}
			if ordered > 0 {
				if err := addOrdered(reg, codec, env.Pool, ordered); err != nil {
					return err
				}
			}
			if err := reactors.AddReactor(reg, reactors.Reactor[tickets.Event]{
				Name: "chaos", Codec: codec, Subscribe: eventstore.NewQuery(eventstore.Types(tickets.TypeTicketSold)),
				React: func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
					buyer := rec.Event.(tickets.TicketSold).BuyerID
					kind := "chaos.slow"
					switch {
					case strings.HasPrefix(buyer, "hang"):
						kind = "chaos.hang"
					case strings.HasPrefix(buyer, "fail"):
						kind = "chaos.fail"
					}
					return []eventstore.PlannedEffect{{Kind: kind, Key: kind + ":" + rec.ID.String(), Args: buyer}}, nil
				},
			}); err != nil {
				return err
			}
			record := func(ctx context.Context, key string) error {
				_, err := env.Pool.Exec(ctx, `INSERT INTO chaos_effects (key) VALUES ($1) ON CONFLICT (key) DO UPDATE SET runs = chaos_effects.runs + 1`, key)
				return err
			}
			if err := reactors.AddEffect(reg, reactors.EffectHandler[string]{Kind: "chaos.slow", MaxAttempts: 25,
				Handle: func(ctx context.Context, e reactors.Effect[string]) error {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(slow):
					}
					return record(ctx, e.Key)
				}}); err != nil {
				return err
			}
			if err := reactors.AddEffect(reg, reactors.EffectHandler[string]{Kind: "chaos.hang", MaxAttempts: 2, Timeout: 300 * time.Millisecond,
				Handle: func(ctx context.Context, e reactors.Effect[string]) error {
					<-ctx.Done() // hangs until River's timeout cancels it
					return ctx.Err()
				}}); err != nil {
				return err
			}
			return reactors.AddEffect(reg, reactors.EffectHandler[string]{Kind: "chaos.fail", MaxAttempts: 3,
				Handle: func(context.Context, reactors.Effect[string]) error { return fmt.Errorf("downstream refuses") }})
		},
		Commands:     func(reg *activities.Registry) error { return tickets.RegisterCommands(reg, codec) },
		Workflows:    tickets.RegisterWorkflows,
		DomainErrors: tickets.DomainErrors,
	}
}

// OrderedReactor is the chaos reactor of ordered effects: a sale's effect
// runs after every earlier sale's effect of the same buyer.
const OrderedReactor = "chaos-ordered"

// addOrdered registers the chaos reactor of ordered effects. Its handler
// records the effect, then holds its transaction open for hold: a kill in
// that window rolls the record back and the effect runs again.
func addOrdered(reg *reactors.Registry, codec eventstore.Codec[tickets.Event], pool *pgxpool.Pool, hold time.Duration) error {
	err := reactors.AddReactor(reg, reactors.Reactor[tickets.Event]{
		Name: OrderedReactor, Codec: codec, Subscribe: eventstore.NewQuery(eventstore.Types(tickets.TypeTicketSold)),
		React: func(rec eventstore.Record[tickets.Event]) ([]eventstore.PlannedEffect, error) {
			buyer := rec.Event.(tickets.TicketSold).BuyerID
			return []eventstore.PlannedEffect{{Kind: "chaos.ordered", Key: "co:" + rec.ID.String(), OrderingKey: "buyer:" + buyer, Args: buyer}}, nil
		},
	})
	if err != nil {
		return err
	}
	return reactors.AddEffect(reg, reactors.EffectHandler[string]{Kind: "chaos.ordered", MaxAttempts: 25,
		Handle: func(ctx context.Context, e reactors.Effect[string]) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO chaos_ordered (effect_key, ordering_key, position) VALUES ($1, $2, $3)
					ON CONFLICT (effect_key) DO NOTHING`, e.Key, e.OrderingKey, int64(e.Position))
				if err != nil {
					return err
				}
				// Written, not committed: the window the suite kills in.
				_, err = tx.Exec(ctx, `SELECT pg_sleep($1::float8) /* chaos ordered */`, hold.Seconds())
				return err
			})
		}})
}
