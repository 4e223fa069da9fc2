package factosfx_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/migrations"
	"github.com/factos-go/factos/projections"
)

// An application's own worker: its migrations are a line of their own,
// applied by `migrate` after the store's, and its own command runs with
// the worker's flags, configuration and database.
func TestMainRunsAnApplicationsWorker(t *testing.T) {
	// RunCommand reads the environment, as a binary's main does: no
	// t.Parallel with t.Setenv.
	ctx := context.Background()
	dbURL := testdb.NewEmptyURL(t)
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("TEMPORAL_ENABLED", "false")
	domain := factosfx.Domain{
		Name: "shop",
		Migrations: &migrations.Application{Name: "shop", FS: fstest.MapFS{
			"00001_orders.sql": {Data: []byte("-- +goose Up\nCREATE TABLE shop_orders (id text PRIMARY KEY);\nINSERT INTO shop_orders VALUES ('a'), ('b');\n")},
		}},
	}
	var counted int
	count := factosfx.Command{
		CommandSpec: factosfx.CommandSpec{Name: "orders count", Args: []string{"orders", "count"}, Description: "Count the orders."},
		Synopsis:    "orders count [-min N]  count the orders",
		Run: func(ctx context.Context, env *factosfx.CommandEnv, args []string) int {
			if len(args) == 0 || args[0] != "count" {
				return 2
			}
			fs := env.Flags("orders count", " [-min N]")
			minimum := fs.Int("min", 0, "fail below this many")
			if code, ok := env.Parse(fs, args[1:]); !ok {
				return code
			}
			cfg := env.Config()
			if cfg == nil {
				return 2
			}
			pool := env.Pool(ctx, cfg)
			if pool == nil {
				return 1
			}
			defer pool.Close()
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM shop_orders").Scan(&counted); err != nil {
				t.Error(err)
				return 1
			}
			if counted < *minimum {
				return 3
			}
			return 0
		},
	}

	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"migrate", "status"}, 3}, // all pending, the application's too
		{[]string{"orders", "count", "-h"}, 0},
		{[]string{"orders", "count", "-max", "1"}, 2},
		{[]string{"migrate"}, 0},
		{[]string{"migrate", "status"}, 0},
		{[]string{"orders", "count", "-min", "2"}, 0},
		{[]string{"orders", "count", "-min", "3"}, 3},
		{[]string{"orders", "sum"}, 2},
	} {
		if got := factosfx.RunCommand(ctx, domain, tc.args, count); got != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.args, got, tc.want)
		}
	}
	if counted != 2 {
		t.Errorf("the command counted %d orders, want 2", counted)
	}
	st, err := migrations.ReadStatus(ctx, testdb.Pool(t, dbURL), domain.MigrationConfig(nil))
	if err != nil || !st.Current() || st.ApplicationName != "shop" || len(st.Application) != 1 {
		t.Fatalf("status after `migrate`: %+v, %v", st, err)
	}

	// A command may not take a built-in's first word.
	shadow := count
	shadow.Args = []string{"migrate", "orders"}
	if got := factosfx.RunCommand(ctx, domain, []string{"migrate"}, shadow); got != 2 {
		t.Errorf("a command shadowing `migrate`: exit %d, want 2", got)
	}
}

// A rebuild that gets stuck on an event stops waiting: it exits 3 (and
// names the event and the skip command), leaving the projection reset for
// the workers; after a skip, the rebuild completes.
func TestRebuildOfAStuckProjectionExitsThree(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.NewEmptyURL(t)
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("TEMPORAL_ENABLED", "false")
	domain := factosfx.Domain{
		Name: "notes",
		Projections: func(reg *projections.Registry, _ factosfx.DomainEnv) error {
			return projections.AddProjection(reg, projections.Projection[string]{
				Name: "notes", Query: eventstore.AllEvents(), Codec: rawType{},
				Apply: func(_ context.Context, _ pgx.Tx, records []eventstore.Record[string]) error {
					for _, r := range records {
						if r.Event == "Bad" {
							return errors.New("cannot apply a bad note")
						}
					}
					return nil
				},
				Reset: func(context.Context, pgx.Tx, eventstore.Position) error { return nil },
			})
		},
	}
	if got := factosfx.RunCommand(ctx, domain, []string{"migrate"}); got != 0 {
		t.Fatalf("migrate: exit %d", got)
	}
	store, err := eventstore.New(testdb.Pool(t, dbURL), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Append(ctx, eventstore.AppendRequest{Stream: "s", Events: []eventstore.EventData{{Type: "A"}, {Type: "Bad"}, {Type: "A"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := factosfx.RunCommand(ctx, domain, []string{"projections", "rebuild", "notes"}); got != 3 {
		t.Fatalf("rebuild of a projection stuck at an event: exit %d, want 3", got)
	}
	bad := fmt.Sprint(res.Records[1].Position)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"projections", "status"}, 3},
		{[]string{"projections", "skip", "notes", bad, "-reason", "test"}, 0},
		{[]string{"projections", "rebuild", "notes"}, 0},
		{[]string{"projections", "status"}, 0},
	} {
		if got := factosfx.RunCommand(ctx, domain, tc.args); got != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.args, got, tc.want)
		}
	}
}

// rawType decodes an event as its type.
type rawType struct{}

func (rawType) Encode(s string) (eventstore.EventData, error) {
	return eventstore.EventData{Type: s}, nil
}
func (rawType) Decode(r eventstore.RawRecord) (string, error) { return r.Type, nil }
