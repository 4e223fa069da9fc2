package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/factos-go/factos/internal/eventsql"
)

// Store is the PostgreSQL event store. It is safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	cfg      *Config
	strategy *strategy
	tracer   trace.Tracer

	// strategyChecked is set once the database's recorded lock strategy
	// has been found equal to the store's (see checkStrategy).
	strategyChecked atomic.Bool

	// barrierTries is how often a barrier tries its locks before it waits
	// for them: barrierTries, but for tests that need a reader that never
	// waits.
	barrierTries int
}

// New returns a store over pool. The schema must be migrated (see the
// migrations package). The store does not own the pool.
func New(pool *pgxpool.Pool, cfg *Config) (*Store, error) {
	if pool == nil {
		return nil, errors.New("eventstore: nil pool")
	}
	c := cfg.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("eventstore: invalid config: %w", err)
	}
	return &Store{pool: pool, cfg: c, strategy: newStrategy(c.LockStrategy, c.MaxLockKeys), tracer: c.tracer(), barrierTries: barrierTries}, nil
}

// Pool is the pool the store runs on.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// LockStrategy is the strategy the store was configured with.
func (s *Store) LockStrategy() LockStrategy { return s.cfg.LockStrategy }

// Limits are the input limits in force.
func (s *Store) Limits() Limits { return s.cfg.Limits }

// Hook runs inside a dispatch transaction after the events are appended
// and before the commit, with the records as they will be committed. An
// error rolls the whole dispatch back. Hooks must only use tx for database
// work, so that their writes commit or roll back with the events.
type Hook interface {
	AfterAppend(ctx context.Context, tx pgx.Tx, records []RawRecord) error
}

// BatchHook is a hook that costs no round trip of its own. It can write
// its rows in the statement that inserts the events (Appending.Join: a
// data-modifying CTE that reads the inserted events, positions included),
// and queue statements on b, which the store sends after that statement
// in the same batch (and commits with it, when no Hook runs in between).
// Both run in the dispatch transaction; an error rolls the dispatch back.
// When the insert finds a write lock taken it inserts nothing, the batch
// still runs, and the dispatch restarts and calls the hook again: write
// from "appended" (which is then empty), or queue statements harmless to
// repeat. The outbox is a BatchHook.
type BatchHook interface {
	// QueueAfterAppend joins the insert of a's events and queues
	// statements on b. An error fails the dispatch before anything is
	// sent.
	QueueAfterAppend(b *pgx.Batch, a Appending) error
}

// Appending is what a BatchHook knows of an append: its stream and its
// events, with their ids, types, tags and metadata as they will be stored.
// Their positions are known only to the database: a hook's rows that need
// them join the insert (Join).
type Appending struct {
	Stream string
	Events []EventData
	// CommandID is the dispatch's command id, if it has one.
	CommandID string

	stmt *appendStatement
}

// appendStatement collects what batch hooks add to the insert statement.
type appendStatement struct {
	ctes   []string
	params []any
}

// Join adds a data-modifying common table expression to the statement
// that inserts the events, so that its rows are written by that statement:
// no statement of its own, and no lookup of the events. cte is the body
// of the expression (an INSERT ... SELECT, usually). It may read the CTE
// "appended", the events inserted: id, position, revision, recorded_at,
// tags and type. "appended" is empty when the store could not take a
// write lock without waiting; it then inserts nothing and restarts the
// dispatch, so a body must write nothing from an empty "appended" (an
// aggregate needs HAVING count(*) > 0). Its parameters come from Bind.
// Join panics outside the store's call of QueueAfterAppend.
func (a Appending) Join(cte string) {
	a.statement().ctes = append(a.stmt.ctes, cte)
}

// Bind adds v as a bind parameter of the statement that inserts the
// events and returns its placeholder ("$13"), for a body given to Join.
func (a Appending) Bind(v any) string {
	st := a.statement()
	st.params = append(st.params, v)
	return fmt.Sprintf("$%d", eventsql.InsertParams+len(st.params))
}

func (a Appending) statement() *appendStatement {
	if a.stmt == nil {
		panic("eventstore: Appending.Join or Bind outside the store's call of BatchHook.QueueAfterAppend")
	}
	return a.stmt
}

// sql is the insert statement with the hooks' CTEs, and its parameters
// after the insert's own.
func (st *appendStatement) sql() string {
	if len(st.ctes) == 0 {
		return insertSQL
	}
	var b strings.Builder
	b.WriteString(eventsql.InsertCTEs)
	for i, c := range st.ctes {
		fmt.Fprintf(&b, ", hook%d AS (\n%s\n)", i+1, c)
	}
	b.WriteString(eventsql.InsertResult)
	return b.String()
}

// HookFunc adapts a function to Hook.
type HookFunc func(ctx context.Context, tx pgx.Tx, records []RawRecord) error

// AfterAppend implements Hook.
func (f HookFunc) AfterAppend(ctx context.Context, tx pgx.Tx, records []RawRecord) error {
	return f(ctx, tx, records)
}

// DispatchInfo describes a finished dispatch or append, for Config.Observer.
type DispatchInfo struct {
	// Op is "dispatch" or "append".
	Op string
	// Outcome is one of "committed", "duplicate", "rejected", "conflict",
	// "invalid", "codec" or "error".
	Outcome  string
	Strategy LockStrategy
	Attempts int
	Events   int
	Duration time.Duration
	Err      error
}

func outcomeOf(err error) string {
	switch {
	case err == nil:
		return "committed"
	case errors.Is(err, ErrRejected):
		return "rejected"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrInvalidInput):
		return "invalid"
	case errors.Is(err, ErrDecode), errors.Is(err, ErrEncode):
		return "codec"
	}
	return "error"
}

// scanRecord scans a row of recordColumns. The id is scanned as the 16
// bytes it is: through uuid.UUID's sql.Scanner pgx would format the UUID as
// text and parse it back. The metadata is scanned as bytes and decoded
// here, so that the common empty object costs no JSON decoding: a catch-up
// read spent a third of its decoding time in encoding/json.
func scanRecord(row pgx.CollectableRow) (RawRecord, error) {
	var r RawRecord
	var pos int64
	var md []byte
	err := row.Scan(&pos, (*[16]byte)(&r.ID), &r.Stream, &r.Revision, &r.Type, &r.Version, &r.Tags, &md, &r.Data, &r.RecordedAt)
	if err != nil {
		return r, err
	}
	r.Position = Position(pos)
	if string(md) == "{}" {
		r.Metadata = Metadata{}
	} else if err := json.Unmarshal(md, &r.Metadata); err != nil {
		return r, fmt.Errorf("decoding the metadata of the event at position %d: %w", pos, err)
	}
	return r, nil
}

// storeError wraps a database error, making sure a cancelled or expired
// context is visible to errors.Is even when the driver reports the failure
// in its own words.
func storeError(ctx context.Context, op string, err error) error {
	var se *StoreError
	if errors.As(err, &se) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", err, cerr)
	}
	return &StoreError{Op: op, Err: err}
}

// pgCode returns the SQLSTATE and constraint of a PostgreSQL error.
func pgCode(err error) (code, constraint string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code, pgErr.ConstraintName
	}
	return "", ""
}
