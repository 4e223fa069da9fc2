package eventstore

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// txn is a dispatch transaction on a connection of its own. BEGIN travels
// in the first batch (pgx's Batch.BeginTx) and COMMIT in the last, so a
// dispatch whose hooks need no round trip of their own takes two: one to
// lock and read, one to append and commit. Every round trip a transaction
// spends waiting for its client is time it holds its locks.
type txn struct {
	conn *pgxpool.Conn
	tx   pgx.Tx // begun by the first batch; hooks get it

	// commitSent is set once a batch carrying COMMIT may have reached the
	// server: from then on a lost connection leaves the outcome unknown.
	commitSent bool
	committed  bool
}

func (s *Store) beginTxn(ctx context.Context) (*txn, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, storeError(ctx, "acquiring a connection", err)
	}
	return &txn{conn: conn}, nil
}

// first sends b, which must begin with Batch.BeginTx, and reads every
// result.
func (t *txn) first(ctx context.Context, b *pgx.Batch) error {
	br := t.conn.SendBatch(ctx, b)
	t.tx = br.Tx()
	return br.Close()
}

// send sends b inside the transaction.
func (t *txn) send(ctx context.Context, b *pgx.Batch) error {
	return t.tx.SendBatch(ctx, b).Close()
}

// commitWith sends b with COMMIT queued at its end.
func (t *txn) commitWith(ctx context.Context, b *pgx.Batch) error {
	if err := ctx.Err(); err != nil {
		// Nothing was sent: the transaction rolls back in end.
		return err
	}
	var tag pgconn.CommandTag
	b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error { tag = ct; return nil })
	t.commitSent = true
	if err := t.send(ctx, b); err != nil {
		return err
	}
	if tag.String() != "COMMIT" {
		// PostgreSQL answers COMMIT of a failed transaction with ROLLBACK.
		return errors.New("the transaction was rolled back at commit")
	}
	t.committed = true
	return nil
}

// commitOutcomeUnknown tells whether err leaves it open whether COMMIT was
// applied: only when a batch carrying COMMIT was sent and the failure is
// neither a statement's error (the transaction then did not commit) nor a
// failure pgx knows happened before anything was sent. An error that ends
// the session (FATAL: pg_terminate_backend, a fast shutdown, a crash) is
// not a statement's: the server may have applied the COMMIT and then died
// before it answered, so it is unknown too.
func (t *txn) commitOutcomeUnknown(err error) bool {
	if !t.commitSent || t.committed {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Severity == "FATAL" || pgErr.Severity == "PANIC" ||
			strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "08")
	}
	return !pgconn.SafeToRetry(err)
}

// end rolls back unless the transaction committed, and releases the
// connection. The rollback runs on a context that is not cancelled with
// the caller's: a cancelled caller is exactly when it must still reach the
// server. A connection that cannot roll back is closed (the pool then
// discards it), which ends the transaction too.
func (t *txn) end(ctx context.Context) {
	defer t.conn.Release()
	if t.committed || t.tx == nil || t.conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := t.tx.Rollback(ctx); err != nil {
		_ = t.conn.Conn().Close(ctx)
	}
}
