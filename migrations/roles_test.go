package migrations_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/migrations"
	"github.com/factos-go/factos/projections"
	"github.com/factos-go/factos/reactors"
)

// docSQL returns the SQL blocks of docs/deploy.md, each marked with an
// <!-- sql:NAME --> comment before its fence. The test runs the documented
// SQL itself, so the documentation cannot drift from what works.
func docSQL(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)<!-- sql:([a-z-]+) -->\n```sql\n(.*?)```").FindAllSubmatch(doc, -1) {
		blocks[string(m[1])] = string(m[2])
	}
	return blocks
}

// asRole returns the connection string of url for another role. The test
// cluster trusts local connections, so the password is not checked here;
// what is checked is what each role may do once connected.
func asRole(t *testing.T, raw, role string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// The migration role and the worker's role of docs/deploy.md work as
// separate roles with exactly the documented grants: the owner migrates an
// empty database; the app role passes the readiness check, dispatches,
// reads, catches up, enqueues and works River jobs and replays under every
// lock strategy, and cannot change the schema, rewrite the log or the
// ledgers, or record a migration.
func TestOwnerMigratesAndAppRoleRunsWithRunTimeGrants(t *testing.T) {
	t.Parallel()
	for _, scheme := range []struct {
		name          string
		beforeMigrate []string // doc blocks the owner runs before migrating
		afterMigrate  []string // and after
	}{
		{"default privileges", []string{"roles-owner-defaults"}, []string{"roles-owner-tighten"}},
		{"exact grants", nil, []string{"roles-owner-exact"}},
	} {
		t.Run(scheme.name, func(t *testing.T) {
			t.Parallel()
			testRoles(t, scheme.beforeMigrate, scheme.afterMigrate)
		})
	}
}

func testRoles(t *testing.T, beforeMigrate, afterMigrate []string) {
	ctx := context.Background()
	// Roles belong to the cluster, not the database: unique names, dropped
	// after the database (cleanups run last registered first), which takes
	// every object and grant that depends on them along.
	var b [6]byte
	_, _ = rand.Read(b[:])
	owner, app := "factos_owner_"+hex.EncodeToString(b[:]), "factos_app_"+hex.EncodeToString(b[:])
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, testdb.AdminURL())
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{owner}.Sanitize()+", "+pgx.Identifier{app}.Sanitize()); err != nil {
			t.Error(err)
		}
	})
	dbURL := testdb.NewEmptyURL(t)
	admin := testdb.Pool(t, dbURL)
	var canCreateRoles bool
	if err := admin.QueryRow(ctx, `SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user`).Scan(&canCreateRoles); err != nil {
		t.Fatal(err)
	}
	if !canCreateRoles {
		t.Skip("the test server's role cannot create roles")
	}
	blocks := docSQL(t)
	for _, name := range slices.Concat([]string{"roles-admin", "roles-table-strategy"}, beforeMigrate, afterMigrate) {
		if blocks[name] == "" {
			t.Fatalf("docs/deploy.md has no sql:%s block", name)
		}
	}

	u, _ := url.Parse(dbURL)
	dbName := strings.TrimPrefix(u.Path, "/")
	doc := func(block string) string {
		return strings.NewReplacer("factos_owner", owner, "factos_app", app,
			"DATABASE factos ", "DATABASE "+pgx.Identifier{dbName}.Sanitize()+" ").Replace(blocks[block])
	}
	run := func(pool *pgxpool.Pool, block string) {
		t.Helper()
		if _, err := pool.Exec(ctx, doc(block)); err != nil {
			t.Fatalf("sql:%s: %v\n%s", block, err, doc(block))
		}
	}
	run(admin, "roles-admin")
	ownerPool := testdb.Pool(t, asRole(t, dbURL, owner))
	appPool := testdb.Pool(t, asRole(t, dbURL, app))

	// The owner migrates: factos, River and the domain, as `worker migrate`.
	for _, block := range beforeMigrate {
		run(ownerPool, block)
	}
	if _, err := migrations.Up(ctx, ownerPool, nil); err != nil {
		t.Fatalf("migrations as the owner: %v", err)
	}
	if err := tickets.Migrate(ctx, ownerPool); err != nil {
		t.Fatalf("the domain's migration as the owner: %v", err)
	}
	for _, block := range afterMigrate {
		run(ownerPool, block)
	}
	var notOwned []string
	if err := admin.QueryRow(ctx, `SELECT coalesce(array_agg(c.relname::text ORDER BY c.relname), '{}') FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> $1`, owner).Scan(&notOwned); err != nil {
		t.Fatal(err)
	}
	if len(notOwned) > 0 {
		t.Fatalf("objects not owned by the migration role: %v", notOwned)
	}

	// The readiness check reads the application's migration line too.
	st, err := migrations.ReadStatus(ctx, appPool, &migrations.Config{Application: tickets.Migrations()})
	if err != nil || !st.Current() {
		t.Fatalf("readiness check as the app role: %+v %v", st, err)
	}

	// The worker's work, as the app role, under each lock strategy. The
	// table strategy needs its documented extra grant; without it the
	// dispatch is refused for want of privilege.
	codec := tickets.NewCodec()
	for _, strategy := range eventstore.LockStrategies {
		t.Run(string(strategy), func(t *testing.T) {
			// Changing the recorded strategy is the operator's act, with
			// every writer stopped; the app role may not.
			if err := eventstore.SetLockStrategy(ctx, ownerPool, strategy); err != nil {
				t.Fatal(err)
			}
			reg := reactors.NewRegistry(nil)
			if err := tickets.RegisterReactions(reg, codec, appPool); err != nil {
				t.Fatal(err)
			}
			env := testriver.Start(t, appPool, reg, &testriver.Opts{StoreConfig: &eventstore.Config{LockStrategy: strategy}})
			concert := "roles-" + string(strategy)
			schedule := func() error {
				_, err := eventstore.Dispatch(ctx, env.Store, tickets.ScheduleConcertHandler(codec), tickets.ScheduleConcert{ConcertID: concert, Capacity: 2}, nil)
				return err
			}
			if strategy == eventstore.LockTable {
				if err := schedule(); sqlState(err) != "42501" {
					t.Fatalf("table strategy without UPDATE on factos_events: err = %v, want permission denied", err)
				}
				run(ownerPool, "roles-table-strategy")
			}
			if err := schedule(); err != nil {
				t.Fatal(err)
			}
			buy := tickets.BuyTicketHandler(codec)
			for i := range 3 {
				id := fmt.Sprintf("%s/buy/%d", concert, i)
				_, err := eventstore.Dispatch(ctx, env.Store, buy, tickets.BuyTicket{ConcertID: concert, BuyerID: fmt.Sprint(i)}, &eventstore.DispatchOpts{CommandID: id})
				if (i < 2) != (err == nil) {
					t.Fatalf("buyer %d: %v", i, err)
				}
			}
			again, err := eventstore.Dispatch(ctx, env.Store, buy, tickets.BuyTicket{ConcertID: concert, BuyerID: "0"}, &eventstore.DispatchOpts{CommandID: concert + "/buy/0"})
			if err != nil || !again.Duplicate {
				t.Fatalf("retried command: %+v %v", again, err)
			}
			sales := eventstore.NewQuery(eventstore.TypesAndTags([]string{tickets.TypeTicketSold}, tickets.ConcertTag(concert)))
			if res, err := env.Store.Read(ctx, sales); err != nil || len(res.Records) != 2 {
				t.Fatalf("read: %+v %v", res, err)
			}
			if page, err := env.Store.ReadAfter(ctx, 0, &eventstore.ReadAfterOpts{Query: &sales}); err != nil || len(page.Records) != 2 {
				t.Fatalf("catch-up read: %+v %v", page, err)
			}
			if recs, _, err := env.Store.ReadStream(ctx, tickets.ConcertStream(concert), 0); err != nil || len(recs) == 0 {
				t.Fatalf("stream read: %d %v", len(recs), err)
			}
			// River works the reactions and effects the dispatches enqueued.
			testriver.WaitFor(t, time.Minute, "the announcements", func() (bool, error) {
				var n int
				err := appPool.QueryRow(ctx, `SELECT count(*) FROM ticket_announcements WHERE concert_id = $1`, concert).Scan(&n)
				return n == 2, err
			})
			// River elects its leader (inserting into river_leader) as the
			// app role; the leader runs River's maintenance (rescuer,
			// cleaners, scheduler) on river_job and river_queue.
			testriver.WaitFor(t, time.Minute, "River to elect a leader", func() (bool, error) {
				var n int
				err := appPool.QueryRow(ctx, `SELECT count(*) FROM river_leader`).Scan(&n)
				return n > 0, err
			})
			if strategy == eventstore.LockKeys {
				checkRiverUI(t, env)
			}
			if strategy == eventstore.LockKeys {
				checkProjections(t, env.Store, codec)
			}
			// A named replay stores its checkpoint twice (insert, then
			// update) and enqueues nothing: the reactions ran.
			for range 2 {
				res, err := reg.Replay(ctx, env.Store, reactors.ReplayOpts{Reactor: tickets.ReactorAnnounceSales, Name: "roles-" + string(strategy)})
				if err != nil || res.Enqueued != 0 || !res.Done {
					t.Fatalf("replay: %+v %v", res, err)
				}
			}
		})
	}
	// The command ledger's cleaner deletes expired ids as the app role.
	if _, err := admin.Exec(ctx, `INSERT INTO factos_commands (id, stream, positions, recorded_at)
		VALUES ('roles-expired', 's', '{}', clock_timestamp() - interval '30 days')`); err != nil {
		t.Fatal(err)
	}
	appStore, err := eventstore.New(appPool, nil)
	if err != nil {
		t.Fatal(err)
	}
	cleaner, err := eventstore.NewCommandCleaner(appStore, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := cleaner.Clean(ctx); err != nil || n != 1 {
		t.Fatalf("command ledger cleaner as the app role: deleted %d, %v", n, err)
	}
	// What the app role must not do. Each statement fails for want of
	// privilege (42501), not because of the append-only triggers, which
	// an owner could disable.
	var before int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM factos_events`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"CREATE TABLE intruder (id int)",
		"CREATE SCHEMA intruder",
		"CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
		"CREATE INDEX ON factos_events (stream)",
		"DROP TABLE factos_events",
		"DROP TABLE river_job",
		"DROP FUNCTION factos_refuse_rewrite()",
		"ALTER TABLE factos_events DISABLE TRIGGER factos_events_append_only",
		"ALTER TABLE factos_events ADD COLUMN intruder int",
		"TRUNCATE factos_events",
		"TRUNCATE river_job",
		"DELETE FROM factos_events",
		"DELETE FROM factos_event_tags",
		"UPDATE factos_event_tags SET tag = 'x'",
		"UPDATE factos_commands SET stream = 'x'",
		"DELETE FROM factos_reactions",
		"UPDATE factos_effects SET kind = 'x'",
		"DELETE FROM factos_replays",
		"UPDATE factos_settings SET value = 'table'",
		"DELETE FROM factos_settings",
		"DELETE FROM factos_projections",
		"DELETE FROM factos_effect_sequences",
		"UPDATE factos_projection_skips SET reason = 'x'",
		"DELETE FROM factos_projection_skips",
		"INSERT INTO factos_migrations (version_id, is_applied) VALUES (999, true)",
		"DELETE FROM factos_migrations",
		"DELETE FROM river_migration",
		"INSERT INTO tickets_migrations (version_id, is_applied) VALUES (999, true)",
		"DELETE FROM tickets_migrations",
		"REINDEX INDEX river_job_args_index",
		"SET ROLE " + pgx.Identifier{owner}.Sanitize(),
	} {
		if _, err := appPool.Exec(ctx, sql); sqlState(err) != "42501" {
			t.Errorf("%s as the app role: err = %v, want permission denied (42501)", sql, err)
		}
	}
	// UPDATE on factos_events is granted for the table strategy; the
	// trigger still refuses it.
	if _, err := appPool.Exec(ctx, "UPDATE factos_events SET type = 'x'"); sqlState(err) != "23001" {
		t.Errorf("UPDATE factos_events as the app role: err = %v, want the append-only trigger's refusal (23001)", err)
	}
	var after int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM factos_events`).Scan(&after); err != nil || after != before {
		t.Errorf("events %d -> %d (%v)", before, after, err)
	}
}

// checkProjections runs, rebuilds and skips in projections as the role of
// store's pool: a runner applies the ticket domain's projection (taking
// its lease and candidate locks and reading pg_locks), a rebuild clears and
// refills its view, and a skip is recorded.
func checkProjections(t *testing.T, store *eventstore.Store, codec eventstore.Codec[tickets.Event]) {
	t.Helper()
	ctx := context.Background()
	reg := projections.NewRegistry()
	if err := tickets.RegisterProjections(reg, codec); err != nil {
		t.Fatal(err)
	}
	ticketsSold := projections.Projection[tickets.Event]{Name: "roles_skip", Codec: codec,
		Query: eventstore.NewQuery(eventstore.Types(tickets.TypeTicketSold)),
		Apply: func(context.Context, pgx.Tx, []eventstore.Record[tickets.Event]) error { return nil }}
	if err := projections.AddProjection(reg, ticketsSold); err != nil {
		t.Fatal(err)
	}
	c, err := projections.New(store, reg, &projections.Config{LeaseInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Skip a sale before anything runs.
	page, err := store.ReadAfter(ctx, 0, &eventstore.ReadAfterOpts{Query: &ticketsSold.Query, Limit: 1})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("a sale to skip: %v %v", page, err)
	}
	if _, err := c.Skip(ctx, "roles_skip", page.Records[0].Position, &projections.SkipOpts{Reason: "roles"}); err != nil {
		t.Fatalf("skip as the app role: %v", err)
	}
	if _, err := c.Rebuild(ctx, tickets.ProjectionConcertSales, nil); err != nil {
		t.Fatalf("rebuild as the app role: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop(ctx) }()
	st, err := c.StatusOf(ctx, "roles_skip")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range reg.Names() {
		if err := c.WaitFor(ctx, name, st.Head); err != nil {
			t.Fatalf("%s as the app role: %v", name, err)
		}
	}
	// The runner holds its lease between batches too, but a rebuild hands
	// the lease over: wait for it to be held rather than read it once.
	testriver.WaitFor(t, time.Minute, "concert_sales to show running", func() (bool, error) {
		sts, err := c.Status(ctx)
		return err == nil && sts[0].Running, err
	})
	if sts, err := c.Status(ctx); err != nil || sts[0].State != projections.StateOK || !sts[0].Running || sts[1].Skipped != 1 {
		t.Fatalf("status as the app role: %+v %v", sts, err)
	}
}

// checkRiverUI reads River UI's API through a River client on the app
// role's pool, as the worker serves it.
func checkRiverUI(t *testing.T, env *testriver.Env) {
	t.Helper()
	ui, err := factosfx.NewRiverUIHandler(env.Client, factosfx.RiverUIConfig{AllowUnauthenticated: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := testriver.UIServer(t, ui)
	for _, tc := range []struct{ path, want string }{
		{"/riverui/api/features", `"extensions"`},
		{"/riverui/api/states", `"completed"`},
		{"/riverui/api/queues", `"factos_reactions"`},
		{"/riverui/api/jobs?state=completed&limit=100", `"kind":"factos.reactions"`},
		{"/riverui/api/autocomplete?facet=job_kind", "factos.effect.announce_ticket_sale"},
	} {
		resp, err := srv.Client().Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), tc.want) {
			t.Errorf("River UI %s as the app role: %d %.300s", tc.path, resp.StatusCode, body)
		}
	}
}
