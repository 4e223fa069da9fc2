package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Databases hands out the databases a run works in. Run migrates every
// database it is given (migrations.Up is idempotent), so Create may return
// an empty or an already migrated one.
type Databases interface {
	// Create makes a new database and returns its connection string and a
	// function that drops it.
	Create(ctx context.Context) (url string, drop func() error, err error)

	// Clone makes a new database as a copy of the one at url, which must
	// have no open connections, and returns its connection string and a
	// function that drops it. The history scenario loads each size once
	// and measures every cell on a fresh clone, so that no cell runs on
	// the events an earlier cell added.
	Clone(ctx context.Context, url string) (clone string, drop func() error, err error)
}

// ServerDatabases creates and clones databases on a server through a role
// that may create databases (the -database-url of the command, or a
// throwaway cluster's superuser).
type ServerDatabases struct {
	// AdminURL connects to any database of the server (usually
	// "postgres") as a role allowed to CREATE DATABASE. Required.
	AdminURL string
	// Prefix starts the names of the created databases.
	// Default: "factos_bench_".
	Prefix string
}

// Create implements Databases.
func (s ServerDatabases) Create(ctx context.Context) (string, func() error, error) {
	name := s.name()
	if err := adminExec(ctx, s.AdminURL, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("error creating database %s: %w", name, err)
	}
	return withDatabase(s.AdminURL, name), s.dropper(name), nil
}

// Clone implements Databases.
func (s ServerDatabases) Clone(ctx context.Context, src string) (string, func() error, error) {
	return cloneDatabase(ctx, s.AdminURL, src, s.name())
}

func (s ServerDatabases) name() string {
	prefix := s.Prefix
	if prefix == "" {
		prefix = "factos_bench_"
	}
	return prefix + randomSuffix()
}

func (s ServerDatabases) dropper(name string) func() error {
	return func() error { return DropDatabase(context.Background(), s.AdminURL, name) }
}

// CloneDatabase copies the database at src into a new database through
// adminURL, and returns its connection string and a function that drops
// it. It copies files (STRATEGY FILE_COPY): for a history of a million
// events that takes seconds where loading it again takes most of a minute.
// The source must have no open connections.
func CloneDatabase(ctx context.Context, adminURL, src string) (string, func() error, error) {
	return cloneDatabase(ctx, adminURL, src, ServerDatabases{}.name())
}

func cloneDatabase(ctx context.Context, adminURL, src, name string) (string, func() error, error) {
	srcName, err := databaseName(src)
	if err != nil {
		return "", nil, err
	}
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + pgx.Identifier{srcName}.Sanitize() + " STRATEGY FILE_COPY"
	if err := adminExec(ctx, adminURL, sql); err != nil {
		return "", nil, fmt.Errorf("error cloning database %s: %w", srcName, err)
	}
	return withDatabase(adminURL, name), func() error { return DropDatabase(context.Background(), adminURL, name) }, nil
}

// DropDatabase drops the named database, closing its connections.
func DropDatabase(ctx context.Context, adminURL, name string) error {
	return adminExec(ctx, adminURL, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func adminExec(ctx context.Context, adminURL, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

func withDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		// A keyword/value connection string: a later dbname wins.
		return raw + " dbname=" + db
	}
	u.Path = "/" + db
	return u.String()
}

func databaseName(raw string) (string, error) {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return "", fmt.Errorf("error parsing %q: %w", redact(raw), err)
	}
	return cfg.Database, nil
}

// redact hides a password in a connection string for messages and reports.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return strings.Replace(u.String(), "xxxxx", "…", 1)
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
