package factosfx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"
)

// NewPool opens the pgx pool. It does not wait for the database: the pool
// connects on demand and reconnects after a restart, and readiness reports
// whether the database answers. The pool closes last on stop.
func NewPool(lc fx.Lifecycle, cfg *Config, log *slog.Logger) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		// pgx's parse errors can echo the connection string; do not.
		return nil, &ConfigError{Var: "DATABASE_URL", Secret: true, Reason: "cannot be parsed as a connection string", Valid: databaseURLForm}
	}
	pc.MaxConns = cfg.DatabaseMaxConns
	pc.ConnConfig.RuntimeParams["application_name"] = "factos-worker"
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("error creating the database pool: %w", err)
	}
	lc.Append(fx.StopHook(func() {
		pool.Close()
		log.Info("database pool closed")
	}))
	return pool, nil
}

// PingTimeout bounds one attempt to reach the database: a host that drops
// packets would otherwise hold a dial for minutes.
const PingTimeout = 10 * time.Second

// PingDatabase checks that the database answers within PingTimeout (or
// ctx's deadline, if sooner), and explains why not (see DatabaseError).
func PingDatabase(ctx context.Context, pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	return explainPoolError(ctx, pool, pool.Ping(ctx))
}

// explainPoolError is ExplainDatabaseError for an operation on pool under
// ctx: when ctx expired before a connection was made, the pool reports
// only that, and the server is taken from the pool's configuration.
func explainPoolError(ctx context.Context, pool *pgxpool.Pool, err error) error {
	var ce *pgconn.ConnectError
	if err != nil && !errors.As(err, &ce) && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		cc := pool.Config().ConnConfig
		return &DatabaseError{Server: server(cc.Host, cc.Port, cc.Database, cc.User), Problem: "no answer in time", Hint: hintSilent, Err: err}
	}
	return ExplainDatabaseError(err)
}

func server(host string, port uint16, database, user string) string {
	return fmt.Sprintf("%s (database %q, user %q)", net.JoinHostPort(host, strconv.Itoa(int(port))), database, user)
}

// DatabaseError says why the database cannot be used, in words an
// operator can act on, without the driver's repetitions (pgx reports a
// refused connection once per TLS mode it tried).
type DatabaseError struct {
	// Server is host:port, with the database and user, as DATABASE_URL
	// names them (never the password).
	Server string
	// Problem is what went wrong: "the connection was refused".
	Problem string
	// Hint is what to check: "Is PostgreSQL running there, and is
	// DATABASE_URL right?"
	Hint string
	// Err is the driver's error.
	Err error
}

func (e *DatabaseError) Error() string {
	return fmt.Sprintf("cannot use the database at %s: %s. %s", e.Server, e.Problem, e.Hint)
}

func (e *DatabaseError) Unwrap() error { return e.Err }

const (
	hintReach  = "Is PostgreSQL running there, and is DATABASE_URL right?"
	hintSilent = "Is PostgreSQL running there, does a firewall drop the packets, and is DATABASE_URL right?"
)

// ExplainDatabaseError turns a failure to connect into a *DatabaseError.
// Other errors (nil, a failed statement) come back unchanged.
func ExplainDatabaseError(err error) error {
	var ce *pgconn.ConnectError
	if err == nil || !errors.As(err, &ce) || ce.Config == nil {
		return err
	}
	de := &DatabaseError{
		Server: server(ce.Config.Host, ce.Config.Port, ce.Config.Database, ce.Config.User),
		Hint:   hintReach,
		Err:    err,
	}
	var (
		pgErr  *pgconn.PgError
		dnsErr *net.DNSError
		netErr net.Error
	)
	switch {
	case errors.As(err, &pgErr):
		switch pgErr.Code {
		case "28P01":
			de.Problem = "the server refused the password"
			de.Hint = "Are the user and the password in DATABASE_URL right?"
		case "28000":
			de.Problem = "the server refused this client: " + pgErr.Message
			de.Hint = "Is the user in DATABASE_URL right, and may it connect from here (pg_hba.conf)?"
		case "3D000":
			de.Problem = fmt.Sprintf("there is no database %q", ce.Config.Database)
			de.Hint = "Create it, or fix the database name in DATABASE_URL."
		case "53300":
			de.Problem = "the server has no connection slot left"
			de.Hint = "Lower DATABASE_MAX_CONNS or the number of workers, or raise the server's max_connections."
		default:
			de.Problem = "the server said: " + pgErr.Message
			de.Hint = "Is DATABASE_URL right?"
		}
	case errors.As(err, &dnsErr):
		de.Problem = fmt.Sprintf("the host name %q was not found", dnsErr.Name)
		de.Hint = "Is the host name in DATABASE_URL right?"
	case errors.Is(err, syscall.ECONNREFUSED):
		de.Problem = "the connection was refused"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		de.Problem = "no answer in time"
		de.Hint = hintSilent
	default:
		de.Problem = firstCause(ce)
	}
	return de
}

// firstCause is the first of the driver's per-attempt messages without
// the address prefix it repeats.
func firstCause(ce *pgconn.ConnectError) string {
	msg := ce.Unwrap().Error()
	msg, _, _ = strings.Cut(msg, "\n")
	if _, rest, ok := strings.Cut(msg, "): "); ok {
		msg = rest
	}
	return msg
}
