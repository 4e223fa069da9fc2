package eventstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The lock strategy is a property of the database, not of a process: two
// processes writing with different strategies take locks that do not
// conflict with each other's, and the guarantee is silently lost. So the
// first store to use a database records its strategy there (the
// factos_settings table), and every store checks, once, that it is
// configured with the recorded one before its first read or write.

// lockStrategySetting names the recorded lock strategy in factos_settings.
const lockStrategySetting = "lock_strategy"

// ErrStrategyMismatch: the store is configured with a lock strategy other
// than the one the database records. Nothing was read or written.
var ErrStrategyMismatch = errors.New("lock strategy mismatch")

// StrategyMismatchError reports a store configured with a lock strategy
// other than the one its database records.
type StrategyMismatchError struct {
	// Configured is the store's strategy; Recorded is the database's.
	Configured, Recorded LockStrategy
}

func (e *StrategyMismatchError) Error() string {
	return fmt.Sprintf("this store is configured with lock strategy %q, but the database records %q, "+
		"and every writer of a database must use the same one: configure %q (LOCK_STRATEGY for the worker), "+
		"or, to move the database to %q, stop every writer and run `worker lock-strategy set %s` (SetLockStrategy)",
		e.Configured, e.Recorded, e.Recorded, e.Configured, e.Configured)
}
func (e *StrategyMismatchError) Is(target error) bool { return target == ErrStrategyMismatch }

// CheckLockStrategy records the store's lock strategy in the database if
// none is recorded yet, and returns a *StrategyMismatchError if another one
// is. Every read and write of the store runs this check once by itself;
// call it at start-up to refuse to start instead.
func (s *Store) CheckLockStrategy(ctx context.Context) error {
	s.strategyChecked.Store(false)
	return s.checkStrategy(ctx)
}

// checkStrategy runs the check until it has passed once.
func (s *Store) checkStrategy(ctx context.Context) error {
	if s.strategyChecked.Load() {
		return nil
	}
	recorded, err := recordSetting(ctx, s.pool, lockStrategySetting, string(s.strategy.name))
	if err != nil {
		return storeError(ctx, "checking the recorded lock strategy", err)
	}
	if recorded != string(s.strategy.name) {
		return &StrategyMismatchError{Configured: s.strategy.name, Recorded: LockStrategy(recorded)}
	}
	s.strategyChecked.Store(true)
	return nil
}

// recordSetting records value under name unless a value is recorded
// already, and returns the recorded value.
func recordSetting(ctx context.Context, pool *pgxpool.Pool, name, value string) (string, error) {
	for range 3 {
		var recorded string
		err := pool.QueryRow(ctx, settingSQL, name, value).Scan(&recorded)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // recorded concurrently by another session: read it
		}
		return recorded, err
	}
	return "", fmt.Errorf("setting %s is being recorded concurrently", name)
}

// RecordedLockStrategy returns the lock strategy the database records, or
// "" if no store has used it yet.
func RecordedLockStrategy(ctx context.Context, pool *pgxpool.Pool) (LockStrategy, error) {
	var v string
	err := pool.QueryRow(ctx, readSettingSQL, lockStrategySetting).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("error reading the recorded lock strategy: %w", err)
	}
	return LockStrategy(v), nil
}

// SetLockStrategy records ls as the database's lock strategy, replacing
// whatever was recorded. It is safe only with every writer stopped: a
// process still running with the old strategy keeps writing with locks the
// new one does not conflict with. (Running processes do not re-check; they
// must be restarted with the new strategy, which the check then admits.)
func SetLockStrategy(ctx context.Context, pool *pgxpool.Pool, ls LockStrategy) error {
	if _, err := ParseLockStrategy(string(ls)); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, writeSettingSQL, lockStrategySetting, string(ls)); err != nil {
		return fmt.Errorf("error recording lock strategy %q: %w", ls, err)
	}
	return nil
}
