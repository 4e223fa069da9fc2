// Package migrations holds the versioned, forward-only SQL of the factos
// event store, embedded in the binary, and runs it together with River's own
// migrations.
//
// Up is safe to run twice and from several processes at once: every run
// holds one PostgreSQL session advisory lock for its whole duration, so
// concurrent runs queue behind each other and the later ones find nothing to
// do. Goose (github.com/pressly/goose) applies and records our versions in
// the factos_migrations table; River's migrator (rivermigrate) applies River's
// in river_migration. Neither takes a lock that covers the other, hence ours.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed sql/*.sql
var files embed.FS

// TableName records the applied factos versions.
const TableName = "factos_migrations"

// lockKey is the session advisory lock every migration run holds. It is a
// fixed arbitrary value ("factos-migrate" folded into 63 bits).
const lockKey int64 = 0x66616374_6f736d67

// Config configures a migration run. The zero value is usable.
type Config struct {
	// Logger receives one line per applied version. Default: discard.
	Logger *slog.Logger

	// SkipRiver leaves River's migrations alone, for applications that run
	// them elsewhere. Default: false (River's migrations run too).
	SkipRiver bool
}

// Result tells what a run applied.
type Result struct {
	// Factos lists the factos versions applied by this run.
	Factos []int64
	// River lists the River versions applied by this run.
	River []int
}

// Up applies every pending factos and River migration.
func Up(ctx context.Context, pool *pgxpool.Pool, cfg *Config) (*Result, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	res := &Result{}
	err := withLock(ctx, pool, func() error {
		p, db, err := provider(pool, cfg.Logger)
		if err != nil {
			return err
		}
		defer db.Close()
		applied, err := p.Up(ctx)
		if err != nil {
			return fmt.Errorf("error applying factos migrations: %w", err)
		}
		for _, r := range applied {
			res.Factos = append(res.Factos, r.Source.Version)
		}
		if cfg.SkipRiver {
			return nil
		}
		m, err := riverMigrator(pool, cfg.Logger)
		if err != nil {
			return err
		}
		rr, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if err != nil {
			return fmt.Errorf("error applying River migrations: %w", err)
		}
		for _, v := range rr.Versions {
			res.River = append(res.River, v.Version)
		}
		return nil
	})
	return res, err
}

// VersionStatus is one migration version and whether it is applied.
type VersionStatus struct {
	Version int64
	Name    string
	Applied bool
}

// Status tells which versions are applied and which are pending.
type Status struct {
	Factos []VersionStatus
	River  []VersionStatus
}

// Current reports whether every known migration is applied.
func (s *Status) Current() bool {
	for _, list := range [][]VersionStatus{s.Factos, s.River} {
		for _, v := range list {
			if !v.Applied {
				return false
			}
		}
	}
	return true
}

// Pending lists the versions not yet applied, as "factos/1" or "river/6".
func (s *Status) Pending() []string {
	var out []string
	for _, v := range s.Factos {
		if !v.Applied {
			out = append(out, fmt.Sprintf("factos/%d", v.Version))
		}
	}
	for _, v := range s.River {
		if !v.Applied {
			out = append(out, fmt.Sprintf("river/%d", v.Version))
		}
	}
	return out
}

// ReadStatus reads which migrations are applied. It takes no lock and
// changes nothing, so readiness probes can call it.
func ReadStatus(ctx context.Context, pool *pgxpool.Pool, cfg *Config) (*Status, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	p, db, err := provider(pool, cfg.Logger)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st := &Status{}
	list, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("error reading factos migration status: %w", err)
	}
	for _, s := range list {
		st.Factos = append(st.Factos, VersionStatus{
			Version: s.Source.Version,
			Name:    path.Base(s.Source.Path),
			Applied: s.State == goose.StateApplied,
		})
	}
	if cfg.SkipRiver {
		return st, nil
	}
	m, err := riverMigrator(pool, cfg.Logger)
	if err != nil {
		return nil, err
	}
	existing, err := m.ExistingVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("error reading River migration status: %w", err)
	}
	have := make(map[int]bool, len(existing))
	for _, v := range existing {
		have[v.Version] = true
	}
	for _, v := range m.AllVersions() {
		st.River = append(st.River, VersionStatus{Version: int64(v.Version), Name: v.Name, Applied: have[v.Version]})
	}
	return st, nil
}

// FS is the embedded SQL, for inspection and for tools that want to print it.
func FS() fs.FS {
	sub, err := fs.Sub(files, "sql")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory exists
	}
	return sub
}

func provider(pool *pgxpool.Pool, logger *slog.Logger) (*goose.Provider, *sql.DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := stdlib.OpenDBFromPool(pool)
	p, err := goose.NewProvider(goose.DialectPostgres, db, FS(),
		goose.WithTableName(TableName),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger),
	)
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("error loading factos migrations: %w", err)
	}
	return p, db, nil
}

func riverMigrator(pool *pgxpool.Pool, logger *slog.Logger) (*rivermigrate.Migrator[pgx.Tx], error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("error creating River migrator: %w", err)
	}
	return m, nil
}

// withLock runs fn while holding the migration lock on a dedicated session.
// The lock is a session lock, not a transaction lock, because goose and River
// each run their own transactions on other connections.
func withLock(ctx context.Context, pool *pgxpool.Pool, fn func() error) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("error acquiring a connection for the migration lock: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return fmt.Errorf("error taking the migration lock: %w", err)
	}
	defer func() {
		// Unlock on a fresh context: a cancelled ctx must not leave the
		// session holding the lock when it goes back to the pool.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey); uerr != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck // closing ends the session and its lock
			err = errors.Join(err, fmt.Errorf("error releasing the migration lock: %w", uerr))
		}
	}()
	return fn()
}
