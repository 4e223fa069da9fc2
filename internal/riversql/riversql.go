// Package riversql writes River job rows with SQL of its own, so that the
// outbox can insert a dispatch's reaction job in the batch that inserts its
// events and commits, and a reaction can insert its effect jobs and
// complete itself in one statement batch: no round trip of their own. It
// also counts the rows by kind and state for the metrics (CountJobs),
// which River's client has no call for.
//
// River's clients in other languages insert jobs the same way, with their
// own SQL against River's schema; the columns of river_job are a contract
// tied to River's migration version (8 in River v0.51). The contract test
// (riversql_test.go) inserts the same job through River's InsertManyTx and
// through this package and compares every column, and checks that River
// works both, so an upgrade of River that changes the contract fails the
// tests rather than production.
package riversql

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Job is one river_job row to insert.
type Job struct {
	Kind        string
	Args        []byte // JSON object
	Queue       string
	MaxAttempts int
	Priority    int
	Tags        []string
	Metadata    []byte // JSON object; nil: {}
	// Pending inserts the job in River's pending state, which River does
	// not fetch until something makes it available. Default: available.
	Pending bool
}

// InsertPrefix starts every insert of river_job rows: the columns this
// package writes, in this order; River fills the others from their
// defaults (id, attempt 0, created_at and scheduled_at now(), no errors).
const InsertPrefix = `INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, tags, metadata)`

// insertSQL inserts one row per element of its arrays.
const insertSQL = InsertPrefix + `
SELECT a, k, m, p, q, s::river_job_state, string_to_array(t, ',')::varchar(255)[], coalesce(md, '{}')
FROM unnest($1::jsonb[], $2::text[], $3::int2[], $4::int2[], $5::text[], $6::text[], $7::text[], $8::jsonb[]) AS j(a, k, m, p, q, s, t, md)`

// Arrays are the bind parameters of a job insert, column by column.
type Arrays struct {
	Args, Metadata              [][]byte
	Kinds, Queues, States, Tags []string
	MaxAttempts, Priorities     []int16
}

// Add appends a job to the arrays.
func (a *Arrays) Add(j Job) {
	state := "available"
	if j.Pending {
		state = "pending"
	}
	tags := ""
	for i, t := range j.Tags {
		if i > 0 {
			tags += ","
		}
		tags += t
	}
	a.Args = append(a.Args, j.Args)
	a.Kinds = append(a.Kinds, j.Kind)
	a.MaxAttempts = append(a.MaxAttempts, int16(j.MaxAttempts))
	a.Priorities = append(a.Priorities, int16(j.Priority))
	a.Queues = append(a.Queues, j.Queue)
	a.States = append(a.States, state)
	a.Tags = append(a.Tags, tags)
	a.Metadata = append(a.Metadata, j.Metadata)
}

// Len is the number of jobs added.
func (a *Arrays) Len() int { return len(a.Kinds) }

// Params are the arrays as bind parameters $1..$8 of InsertSQL.
func (a *Arrays) Params() []any {
	return []any{a.Args, a.Kinds, a.MaxAttempts, a.Priorities, a.Queues, a.States, a.Tags, a.Metadata}
}

// InsertSQL inserts the jobs of Arrays.Params ($1..$8), returning their ids.
const InsertSQL = insertSQL + ` RETURNING id`

// QueueInsert queues the insert of jobs on b.
func QueueInsert(b *pgx.Batch, jobs []Job) *pgx.QueuedQuery {
	var a Arrays
	for _, j := range jobs {
		a.Add(j)
	}
	return b.Queue(insertSQL, a.Params()...)
}

// CompleteSQL completes the running job $1 in the caller's transaction, as
// River's JobCompleteTx does: once the transaction commits, River's own
// completion of the job finds it no longer running and leaves it alone.
const CompleteSQL = `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE id = $1 AND state = 'running'`

// NotifySQL tells River's producers that a queue ($1) has new available
// jobs, on the channel River's own inserts use (its schema-qualified
// river_insert topic). Without it a producer finds them at its next poll
// (River's FetchPollInterval).
const NotifySQL = `SELECT pg_notify(current_schema() || '.river_insert', json_build_object('queue', $1::text)::text)`

// Notifier limits insert notifications to one per queue per interval, as
// River's client does: a transaction that notifies takes a global lock at
// commit, so commits that notify serialize, and a producer fetches at most
// once per FetchCooldown anyway.
type Notifier struct {
	interval time.Duration
	last     map[string]*atomic.Int64
}

// NewNotifier returns a notifier for queues, at most one notification per
// queue per interval.
func NewNotifier(interval time.Duration, queues ...string) *Notifier {
	n := &Notifier{interval: interval, last: map[string]*atomic.Int64{}}
	for _, q := range queues {
		n.last[q] = new(atomic.Int64)
	}
	return n
}

// Queue queues a notification for queue on b unless one was queued less
// than the interval ago. A notification in a transaction that rolls back
// is lost; the next job then waits for River's poll, which bounds the cost
// of the limit.
func (n *Notifier) Queue(b *pgx.Batch, queue string) {
	last, ok := n.last[queue]
	if !ok {
		b.Queue(NotifySQL, queue)
		return
	}
	now := time.Now().UnixNano()
	prev := last.Load()
	if now-prev < int64(n.interval) || !last.CompareAndSwap(prev, now) {
		return
	}
	b.Queue(NotifySQL, queue)
}

// MaxTagBytes is the longest tag River accepts.
const MaxTagBytes = 255

// Tag turns s into a tag River accepts (its InsertOpts.Tags rule: at least
// three characters, letters, digits, '_' and '-', beginning and ending
// with a letter, digit or '_', at most 255 bytes), so that a job can be
// found in River UI by the event type or stream it concerns: every other
// character becomes '_', a leading or trailing '-' too, and a shorter tag
// is padded with '_'. Distinct values may map to one tag; a tag is for
// finding jobs, not for telling them apart.
func Tag(s string) string {
	b := []byte(s)
	if len(b) > MaxTagBytes {
		b = b[:MaxTagBytes]
	}
	for i, c := range b {
		word := c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !word && (c != '-' || i == 0 || i == len(b)-1) {
			b[i] = '_'
		}
	}
	for len(b) < 3 {
		b = append(b, '_')
	}
	return string(b)
}

// Tags returns the distinct tags of values, in order of first appearance,
// leaving out empty values.
func Tags(values ...string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		if v == "" {
			continue
		}
		t := Tag(v)
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// JobCount is the number of river_job rows of one kind in one state.
type JobCount struct {
	Kind  string
	State string
	N     int64
}

// jobCountsSQL counts every row River's cleaner has not yet removed.
const jobCountsSQL = `SELECT kind, state::text, count(*) FROM river_job GROUP BY 1, 2`

// CountJobs counts the river_job rows by kind and state. It returns every
// count or an error, never some counts.
func CountJobs(ctx context.Context, pool *pgxpool.Pool) ([]JobCount, error) {
	rows, err := pool.Query(ctx, jobCountsSQL)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[JobCount])
}
