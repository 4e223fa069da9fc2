// Package testdb gives every test its own PostgreSQL database.
//
// A test package calls Main from TestMain. If FACTOS_TEST_DATABASE_URL (or
// else DATABASE_URL) is set, databases are created on that server, which
// needs a role allowed to CREATE DATABASE; otherwise Main starts a throwaway
// cluster from the local PostgreSQL binaries (see internal/devenv) and
// removes it afterwards. Migrations run once per process into a template
// database; New clones it, so each test starts from a migrated, empty store
// and no test sees another's data.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/factos-go/factos/internal/devenv"
	"github.com/factos-go/factos/migrations"
)

var (
	adminURL string
	server   *devenv.Postgres

	templateOnce sync.Once
	templateName string
	templateErr  error
)

// Main starts (or finds) the server, runs the tests and cleans up. Each
// setup runs before the tests (to start more servers) and its teardown
// after them.
func Main(m *testing.M, setups ...func() (teardown func(), err error)) {
	code, err := run(m, setups)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run(m *testing.M, setups []func() (func(), error)) (int, error) {
	ctx := context.Background()
	adminURL = os.Getenv("FACTOS_TEST_DATABASE_URL")
	if adminURL == "" {
		adminURL = os.Getenv("DATABASE_URL")
	}
	if adminURL == "" {
		var err error
		server, err = devenv.StartPostgres(ctx, devenv.PostgresOpts{})
		if err != nil {
			return 0, err
		}
		defer server.Destroy() //nolint:errcheck // best effort at exit
		adminURL = server.URL()
		// Fuzz workers are child processes of this one that run TestMain
		// again: they find the cluster here instead of starting their own.
		// A worker's own cluster would inherit the fuzzing coordinator's
		// pipes, and when the coordinator kills a slow-to-exit worker the
		// orphaned server would hold them open and hang the fuzzing run.
		if err := os.Setenv("FACTOS_TEST_DATABASE_URL", adminURL); err != nil {
			return 0, err
		}
	}
	var teardowns []func()
	tearDown := func() {
		for i := len(teardowns) - 1; i >= 0; i-- {
			teardowns[i]()
		}
		teardowns = nil
	}
	defer tearDown()
	for _, setup := range setups {
		teardown, err := setup()
		if err != nil {
			return 0, err
		}
		teardowns = append(teardowns, teardown)
	}
	code := m.Run()
	if templateName != "" {
		_ = dropDatabase(ctx, templateName)
	}
	tearDown()
	if code == 0 {
		// Every test closed what it opened: pools, clients, servers.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "testdb: goroutines leaked:", err)
			return 1, nil
		}
	}
	return code, nil
}

// Server is the throwaway cluster Main started, or nil when the tests run
// against an external server. Tests that stop and start PostgreSQL need it.
func Server() *devenv.Postgres { return server }

// AdminURL is the connection string of the server's maintenance database.
func AdminURL() string { return adminURL }

// New creates a migrated database for this test and returns a pool on it.
// Both are closed and dropped when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Pool(t, NewURL(t))
}

// NewURL creates a migrated database for this test and returns its
// connection string, for code that builds its own pool or runs a child
// process. The database is dropped when the test ends.
func NewURL(t testing.TB) string {
	t.Helper()
	url, drop, err := Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("error dropping database: %v", err)
		}
	})
	return url
}

// Create makes a migrated database outside of a test, for Example
// functions and benchmarks. Call drop when done.
func Create(ctx context.Context) (url string, drop func() error, err error) {
	templateOnce.Do(func() { templateName, templateErr = makeTemplate() })
	if templateErr != nil {
		return "", nil, fmt.Errorf("error preparing the template database: %w", templateErr)
	}
	name := "factos_test_" + randomSuffix()
	if err := exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{templateName}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("error creating database: %w", err)
	}
	return withDatabase(adminURL, name), func() error { return dropDatabase(context.Background(), name) }, nil
}

// NewEmptyURL creates an empty database (no migrations) for this test.
func NewEmptyURL(t testing.TB) string {
	t.Helper()
	return create(t, "")
}

// Pool opens a pool on url, closed when the test ends.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("error parsing %s: %v", url, err)
	}
	cfg.MaxConns = 32
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("error opening pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func create(t testing.TB, template string) string {
	t.Helper()
	ctx := context.Background()
	name := "factos_test_" + randomSuffix()
	if err := exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" "+template); err != nil {
		t.Fatalf("error creating database: %v", err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(ctx, name); err != nil {
			t.Errorf("error dropping database %s: %v", name, err)
		}
	})
	return withDatabase(adminURL, name)
}

func makeTemplate() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := "factos_template_" + randomSuffix()
	if err := exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, withDatabase(adminURL, name))
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if _, err := migrations.Up(ctx, pool, nil); err != nil {
		return "", err
	}
	return name, nil
}

func exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func dropDatabase(ctx context.Context, name string) error {
	return exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func withDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(fmt.Sprintf("testdb: bad server URL: %v", err))
	}
	u.Path = "/" + db
	return u.String()
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Lazy gives a fuzz target a migrated database of its own: created, and
// set up by init when it is not nil, on the first call of the returned
// function, and dropped when f ends. A fuzz target's iterations run one
// after another in a process and share it; a fuzzing coordinator, which
// never runs the target, never creates one.
func Lazy(f *testing.F, init func(context.Context, *pgxpool.Pool) error) func(testing.TB) *pgxpool.Pool {
	var (
		once sync.Once
		pool *pgxpool.Pool
		drop func() error
		err  error
	)
	f.Cleanup(func() {
		if pool != nil {
			pool.Close()
		}
		if drop != nil {
			if err := drop(); err != nil {
				f.Errorf("error dropping the fuzz database: %v", err)
			}
		}
	})
	return func(t testing.TB) *pgxpool.Pool {
		t.Helper()
		once.Do(func() {
			ctx := context.Background()
			var url string
			if url, drop, err = Create(ctx); err != nil {
				return
			}
			if pool, err = pgxpool.New(ctx, url); err != nil {
				return
			}
			if init != nil {
				err = init(ctx, pool)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return pool
	}
}
