// Package migrations holds the versioned, forward-only SQL of the factos
// event store, embedded in the binary, and runs it together with River's own
// migrations and, when given, the application's (Config.Application).
//
// Up is safe to run twice and from several processes at once: every run
// holds one PostgreSQL session advisory lock for its whole duration, so
// concurrent runs queue behind each other and the later ones find nothing to
// do. Goose (github.com/pressly/goose) applies and records our versions in
// the factos_migrations table; River's migrator (rivermigrate) applies River's
// in river_migration. Neither takes a lock that covers the other, hence ours.
//
// An application's own tables (its projections' views, its effects'
// records) are versioned the same way: an Application is a directory of
// goose SQL files, applied after the factos and River lines and recorded
// in a table of its own, so that `worker migrate status` lists it and
// readiness waits for it like for the store's.
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
	"regexp"

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

	// Application is the application's own migration line, applied after
	// the factos and River lines. Default: none.
	Application *Application
}

// Application is an application's own versioned migrations.
type Application struct {
	// Name of the line, as `migrate status` and Status.Pending print it
	// ("tickets/1"). Required: lower-case letters, digits and underscores,
	// starting with a letter, and not "factos" or "river".
	Name string
	// FS holds the migrations as goose SQL files at its root
	// (00001_create_views.sql with "-- +goose Up"), typically an embed.FS
	// passed through fs.Sub. Required.
	FS fs.FS
	// Table records the applied versions. Default: Name + "_migrations".
	Table string
}

// ErrInvalidApplication is returned (wrapped) for an Application without
// a valid name or files; nothing has been applied then.
var ErrInvalidApplication = errors.New("invalid application migrations")

var appName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

func (a *Application) validate() error {
	switch {
	case !appName.MatchString(a.Name):
		return fmt.Errorf("%w: name %q: lower-case letters, digits and underscores, starting with a letter", ErrInvalidApplication, a.Name)
	case a.Name == "factos" || a.Name == "river":
		return fmt.Errorf("%w: name %q is taken by the library's own line", ErrInvalidApplication, a.Name)
	case a.FS == nil:
		return fmt.Errorf("%w: %s has no FS", ErrInvalidApplication, a.Name)
	case a.table() == TableName || a.table() == "river_migration":
		return fmt.Errorf("%w: table %q is the library's", ErrInvalidApplication, a.table())
	}
	return nil
}

func (a *Application) table() string {
	if a.Table != "" {
		return a.Table
	}
	return a.Name + "_migrations"
}

// Result tells what a run applied.
type Result struct {
	// Factos lists the factos versions applied by this run.
	Factos []int64
	// River lists the River versions applied by this run.
	River []int
	// Application lists the application's versions applied by this run.
	Application []int64
}

// Up applies every pending factos and River migration.
func Up(ctx context.Context, pool *pgxpool.Pool, cfg *Config) (*Result, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Application != nil {
		if err := cfg.Application.validate(); err != nil {
			return nil, err
		}
	}
	res := &Result{}
	err := withLock(ctx, pool, func() error {
		var err error
		if res.Factos, err = upGoose(ctx, pool, "factos", FS(), TableName, cfg.Logger); err != nil {
			return err
		}
		if !cfg.SkipRiver {
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
		}
		// The application's line runs last: its tables may refer to the
		// store's and River's.
		if a := cfg.Application; a != nil {
			if res.Application, err = upGoose(ctx, pool, a.Name, a.FS, a.table(), cfg.Logger); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// upGoose applies a goose line's pending versions.
func upGoose(ctx context.Context, pool *pgxpool.Pool, line string, files fs.FS, table string, logger *slog.Logger) ([]int64, error) {
	p, db, err := provider(pool, line, files, table, logger)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	applied, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("error applying %s migrations: %w", line, err)
	}
	var versions []int64
	for _, r := range applied {
		versions = append(versions, r.Source.Version)
	}
	return versions, nil
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
	// ApplicationName names the application's line (Config.Application),
	// "" without one.
	ApplicationName string
	Application     []VersionStatus
}

// Line is one migration line of a Status.
type Line struct {
	Name     string
	Versions []VersionStatus
}

// Lines are the status's lines in the order they are applied: factos,
// river, then the application's when there is one.
func (s *Status) Lines() []Line {
	lines := []Line{{"factos", s.Factos}, {"river", s.River}}
	if s.ApplicationName != "" {
		lines = append(lines, Line{s.ApplicationName, s.Application})
	}
	return lines
}

// Current reports whether every known migration is applied.
func (s *Status) Current() bool {
	return len(s.Pending()) == 0
}

// Pending lists the versions not yet applied, as "factos/1", "river/6" or
// "tickets/2".
func (s *Status) Pending() []string {
	var out []string
	for _, line := range s.Lines() {
		for _, v := range line.Versions {
			if !v.Applied {
				out = append(out, fmt.Sprintf("%s/%d", line.Name, v.Version))
			}
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
	st := &Status{}
	var err error
	if st.Factos, err = gooseStatus(ctx, pool, "factos", FS(), TableName, cfg.Logger); err != nil {
		return nil, err
	}
	if a := cfg.Application; a != nil {
		if err := a.validate(); err != nil {
			return nil, err
		}
		st.ApplicationName = a.Name
		if st.Application, err = gooseStatus(ctx, pool, a.Name, a.FS, a.table(), cfg.Logger); err != nil {
			return nil, err
		}
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

// gooseStatus reads which versions of a goose line are applied.
func gooseStatus(ctx context.Context, pool *pgxpool.Pool, line string, files fs.FS, table string, logger *slog.Logger) ([]VersionStatus, error) {
	p, db, err := provider(pool, line, files, table, logger)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	list, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("error reading %s migration status: %w", line, err)
	}
	out := make([]VersionStatus, 0, len(list))
	for _, s := range list {
		out = append(out, VersionStatus{
			Version: s.Source.Version,
			Name:    path.Base(s.Source.Path),
			Applied: s.State == goose.StateApplied,
		})
	}
	return out, nil
}

// FS is the embedded SQL, for inspection and for tools that want to print it.
func FS() fs.FS {
	sub, err := fs.Sub(files, "sql")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory exists
	}
	return sub
}

func provider(pool *pgxpool.Pool, line string, files fs.FS, table string, logger *slog.Logger) (*goose.Provider, *sql.DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := stdlib.OpenDBFromPool(pool)
	p, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithTableName(table),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger.With("migrations", line)),
	)
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("error loading %s migrations: %w", line, err)
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
