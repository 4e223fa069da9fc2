package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/internal/background"
)

// The command ledger (factos_commands) remembers every command id so that a
// retried command answers with its first result. It would grow forever; the
// CommandCleaner deletes ids older than a retention instead. The trade-off:
// a command retried, or an id reused, after its row was deleted is decided
// and appended again, as a new command. Keep the retention longer than any
// command can still be retried: a Temporal activity's retries, a client's
// retry window.

// Defaults of CommandCleanerConfig.
const (
	// DefaultCommandRetention is how long a command id is remembered: far
	// beyond a Temporal activity's usual retry window and a client's, short
	// enough that the ledger stays small.
	DefaultCommandRetention = 7 * 24 * time.Hour
	// DefaultCommandCleanInterval is the time between two cleaning passes.
	DefaultCommandCleanInterval = 10 * time.Minute
	// DefaultCommandCleanBatchSize is how many rows one DELETE removes.
	DefaultCommandCleanBatchSize = 1000
)

// deleteCommandsSQL deletes one batch of ids recorded before the retention,
// on the database's clock (pods' clocks may differ). It locks no row
// before deleting (FOR UPDATE would need the UPDATE privilege, which the
// app role does not have); cleanerLockSQL keeps cleaners apart instead.
const deleteCommandsSQL = `DELETE FROM factos_commands WHERE id IN (
	SELECT id FROM factos_commands
	WHERE recorded_at < clock_timestamp() - make_interval(secs => $1)
	ORDER BY recorded_at
	LIMIT $2
)`

// cleanerLockSQL tries the cleaners' lock for the batch's transaction: one
// cleaner deletes at a time, and the others end their pass at once rather
// than wait or delete the same rows. The two-int4 form lives in another
// key space than the store's int8 keys ("fact", "cmds").
const cleanerLockSQL = `SELECT pg_try_advisory_xact_lock(1717658484, 1668113523)`

// CommandCleanerConfig configures a CommandCleaner. The zero value is
// usable.
type CommandCleanerConfig struct {
	// Retention is how long a command id is remembered. After it, the row
	// is deleted and a dispatch under the id runs as a new command.
	// Default: DefaultCommandRetention.
	Retention time.Duration
	// Interval is the time between two passes. Default:
	// DefaultCommandCleanInterval.
	Interval time.Duration
	// BatchSize is how many rows one DELETE statement removes; a pass
	// repeats it until no row is older than the retention. Default:
	// DefaultCommandCleanBatchSize.
	BatchSize int
	// Logger receives one line per pass that deleted rows, and failed
	// passes. Default: the store's Logger.
	Logger *slog.Logger
}

func (c *CommandCleanerConfig) withDefaults() CommandCleanerConfig {
	out := CommandCleanerConfig{}
	if c != nil {
		out = *c
	}
	if out.Retention == 0 {
		out.Retention = DefaultCommandRetention
	}
	if out.Interval == 0 {
		out.Interval = DefaultCommandCleanInterval
	}
	if out.BatchSize == 0 {
		out.BatchSize = DefaultCommandCleanBatchSize
	}
	return out
}

// CommandCleaner deletes command ids older than a retention from the
// ledger, in batches. Any number of cleaners may run against one database
// (one per worker process): a transaction-scoped advisory lock lets one
// delete at a time, and a cleaner that finds it taken ends its pass (the
// holder is doing the work). The database role needs DELETE on
// factos_commands, and nothing more.
type CommandCleaner struct {
	store *Store
	cfg   CommandCleanerConfig

	loop background.Goroutine
}

// NewCommandCleaner returns a cleaner of store's ledger. It refuses a
// negative retention, interval or batch size.
func NewCommandCleaner(store *Store, cfg *CommandCleanerConfig) (*CommandCleaner, error) {
	c := cfg.withDefaults()
	switch {
	case store == nil:
		return nil, errors.New("eventstore: nil store")
	case c.Retention < 0:
		return nil, &InvalidInputError{Field: "CommandCleanerConfig.Retention", Reason: "negative"}
	case c.Interval < 0:
		return nil, &InvalidInputError{Field: "CommandCleanerConfig.Interval", Reason: "negative"}
	case c.BatchSize < 0:
		return nil, &InvalidInputError{Field: "CommandCleanerConfig.BatchSize", Reason: "negative"}
	}
	if c.Logger == nil {
		c.Logger = store.cfg.Logger
	}
	return &CommandCleaner{store: store, cfg: c}, nil
}

// Config is the cleaner's configuration with defaults applied.
func (c *CommandCleaner) Config() CommandCleanerConfig { return c.cfg }

// Clean runs one pass: it deletes every command id older than the
// retention, a batch (one transaction) at a time, and returns how many it
// deleted. It returns early, with what it deleted so far, when another
// cleaner holds the lock. Errors are *StoreError.
func (c *CommandCleaner) Clean(ctx context.Context) (int64, error) {
	var total int64
	for {
		var locked bool
		var n int64
		err := pgx.BeginFunc(ctx, c.store.pool, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, cleanerLockSQL).Scan(&locked); err != nil || !locked {
				return err
			}
			tag, err := tx.Exec(ctx, deleteCommandsSQL, c.cfg.Retention.Seconds(), c.cfg.BatchSize)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return total, storeError(ctx, "deleting expired command ids", err)
		}
		total += n
		if !locked || n < int64(c.cfg.BatchSize) {
			return total, nil
		}
	}
}

// Start runs a pass now and then every Interval, in the background, until
// Stop. A failed pass is logged and tried again at the next interval.
func (c *CommandCleaner) Start(ctx context.Context) error {
	// The loop outlives Start's context (fx cancels it once start-up is
	// over); Stop ends it.
	if err := c.loop.Start(context.WithoutCancel(ctx), c.run); err != nil {
		return fmt.Errorf("eventstore: command cleaner: %w", err)
	}
	return nil
}

func (c *CommandCleaner) run(ctx context.Context) {
	log := c.cfg.Logger
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := c.Clean(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			log.ErrorContext(ctx, "eventstore: cleaning the command ledger failed", "error", err, "deleted", n)
		case n > 0:
			log.InfoContext(ctx, "eventstore: deleted expired command ids", "deleted", n, "retention", c.cfg.Retention.String())
		}
		t.Reset(c.cfg.Interval)
	}
}

// Stop ends the background loop and waits for a running pass to stop (its
// statement is cancelled), or for ctx.
func (c *CommandCleaner) Stop(ctx context.Context) error {
	if err := c.loop.Stop(ctx); err != nil {
		return fmt.Errorf("eventstore: stopping the command cleaner: %w", err)
	}
	return nil
}
