package reactors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/background"
	"github.com/factos-go/factos/outbox"
)

// Sequencer defaults.
const (
	// DefaultSequencerPollInterval is how often the sequencer looks for
	// effects to release when nothing wakes it: it bounds how late an
	// effect planned by another process, or retried from River UI, starts.
	DefaultSequencerPollInterval = 100 * time.Millisecond
	// DefaultSequencerMinGap is the shortest time between two passes,
	// however often workers wake the sequencer.
	DefaultSequencerMinGap = 2 * time.Millisecond
)

// SequencerConfig configures the Sequencer. The zero value is usable.
type SequencerConfig struct {
	// PollInterval is the longest time between two passes.
	// Default: DefaultSequencerPollInterval (100ms).
	PollInterval time.Duration
	// MinGap is the shortest time between two passes. Each pass is one
	// round trip (two when it must read the log's high-water mark) and
	// may notify River's producers, so it bounds the sequencer's load.
	// Default: DefaultSequencerMinGap (2ms).
	MinGap time.Duration
}

func (c SequencerConfig) withDefaults() (SequencerConfig, error) {
	var errs []error
	if c.PollInterval < 0 {
		errs = append(errs, errors.New("reactors: Sequencer.PollInterval must not be negative"))
	}
	if c.MinGap < 0 {
		errs = append(errs, errors.New("reactors: Sequencer.MinGap must not be negative"))
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultSequencerPollInterval
	}
	if c.MinGap == 0 {
		c.MinGap = DefaultSequencerMinGap
	}
	if c.MinGap > c.PollInterval {
		errs = append(errs, fmt.Errorf("reactors: Sequencer.MinGap (%s) must not exceed PollInterval (%s)", c.MinGap, c.PollInterval))
	}
	return c, errors.Join(errs...)
}

// Sequencer releases effects that carry an ordering key, one at a time per
// key, in their key's order.
//
// A reaction inserts an ordered effect's River job in River's pending
// state, which River never fetches, with a row in factos_effect_sequences.
// A pass of the sequencer makes the head of each key (its first unfinished
// effect, in order of position, reactor and index in the reactor's plan)
// available to River's workers when it is waiting and its position is
// below the watermark: the lowest position of any reaction job not yet
// complete (replays aside), and above the log's high-water mark read
// behind the store's barrier. Reactions run in parallel, so a reaction for
// a lower position may not have planned its effects yet; the watermark
// waits for it. An ordered effect's worker marks the row done in the
// transaction that completes the job, and wakes the sequencer.
//
// A pass also settles the key of a head whose job was cancelled or
// discarded: it halts there, or goes on, as the effect kind's OnFailure
// says; a halted head whose job is retried (from River UI) runs again.
//
// Passes take a transaction-level advisory lock, so sequencers in several
// processes never release one key's next effect twice. Reaction and
// effect workers wake the sequencer when they finish; it also polls, every
// PollInterval, for effects planned or retried elsewhere.
type Sequencer struct {
	store *eventstore.Store
	cfg   SequencerConfig
	log   *slog.Logger
	wake  chan struct{}
	// waiting is true when the last pass left effects waiting: then every
	// completed reaction may move the watermark and wakes the sequencer.
	waiting atomic.Bool

	loop background.Goroutine

	// passMu serializes the passes of this process (the loop's and
	// Pass's) and guards hwm, the last high-water mark read.
	passMu sync.Mutex
	hwm    eventstore.Position
}

func newSequencer(store *eventstore.Store, cfg SequencerConfig, log *slog.Logger) (*Sequencer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Sequencer{store: store, cfg: cfg, log: log, wake: make(chan struct{}, 1)}, nil
}

// ErrSequencerRunning is returned by Start when the sequencer already runs.
var ErrSequencerRunning = errors.New("reactors: sequencer already running")

// Start runs the sequencer in the background until Stop or until ctx
// ends. Do not pass a start hook's context that expires (fx's OnStart):
// its end stops the sequencer.
func (s *Sequencer) Start(ctx context.Context) error {
	if err := s.loop.Start(ctx, s.run); errors.Is(err, background.ErrRunning) {
		return ErrSequencerRunning
	}
	return nil
}

// Stop stops the sequencer and waits for its pass in progress, if any, up
// to ctx's end. Stopping a sequencer that does not run does nothing.
func (s *Sequencer) Stop(ctx context.Context) error { return s.loop.Stop(ctx) }

// Wake asks for a pass soon. It never blocks.
func (s *Sequencer) Wake() {
	if s == nil {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Sequencer) wakeIfWaiting() {
	if s != nil && s.waiting.Load() {
		s.Wake()
	}
}

func (s *Sequencer) run(ctx context.Context) {
	poll := time.NewTimer(0)
	defer poll.Stop()
	var failures int
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-poll.C:
		}
		start := time.Now()
		_, err := s.pass(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			failures++
			// The poll retries; say so once per run of failures, and
			// then every hundredth time.
			if failures%100 == 1 {
				s.log.Warn("sequencer pass failed; retrying", "error", err, "failures", failures)
			}
		default:
			failures = 0
		}
		poll.Reset(s.cfg.PollInterval)
		if gap := s.cfg.MinGap - time.Since(start); gap > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(gap):
			}
		}
	}
}

// PassResult is what one pass of the sequencer did.
type PassResult struct {
	// Released is the number of effects made available.
	Released int
	// Settled is the number of heads whose state followed their job's:
	// failed (the key halts), skipped (the key goes on), done, or running
	// again after a retry.
	Settled int
}

// Pass runs one pass now, in the caller's goroutine: what the running
// sequencer does when woken. Tests and tools use it; applications Start
// the sequencer instead.
func (s *Sequencer) Pass(ctx context.Context) (PassResult, error) {
	return s.pass(ctx)
}

// sequencerLockKey is the advisory lock every pass holds for its
// transaction ("factosSQ"). Should it collide with a key of the event
// store's, both would only wait for each other a little.
const sequencerLockKey int64 = 0x666163746f735351

// settleSQL makes each running or failed sequence row follow its job: a
// job cancelled, discarded or deleted fails the effect (the key halts) or
// skips it (the key goes on), as recorded when it was planned; a job
// completed outside its worker's transaction is done; a failed effect's
// job retried from River UI runs again.
const settleSQL = `UPDATE factos_effect_sequences s
SET state = n.state, finished_at = CASE WHEN n.state = 'running' THEN NULL ELSE clock_timestamp() END
FROM (
	SELECT q.effect_key, CASE
		WHEN j.state IS NULL OR j.state IN ('cancelled', 'discarded') THEN
			CASE WHEN q.state = 'failed' OR NOT q.continue_on_failure THEN 'failed' ELSE 'skipped' END
		WHEN j.state = 'completed' THEN 'done'
		ELSE 'running'
	END AS state
	FROM factos_effect_sequences q LEFT JOIN river_job j ON j.id = q.job_id
	WHERE q.state IN ('running', 'failed')
) n
WHERE s.effect_key = n.effect_key AND s.state <> n.state
	-- Re-read under the row's lock: an operator's skip may have committed
	-- since the statement's snapshot, and is not to be overwritten.
	AND s.state IN ('running', 'failed')`

// releaseSQL releases each key's head when it waits and its position is
// below the watermark: the lowest position of a reaction job not complete
// (replays aside) and, at most, one above the high-water mark $1. Its
// jobs become available and River's producers of their queues are told.
// It returns the number released, and whether some head waits only for a
// newer high-water mark.
const releaseSQL = `WITH m AS (
	SELECT min((args->'events'->0->>'position')::int8) AS reacting
	FROM river_job
	WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
		AND kind = '` + outbox.Kind + `' AND coalesce(args->>'replay', '') = ''
), heads AS (
	SELECT DISTINCT ON (ordering_key) ordering_key, effect_key, job_id, state, position
	FROM factos_effect_sequences
	WHERE state IN ('waiting', 'running', 'failed')
	ORDER BY ordering_key, position, reactor, ordinal
), rel AS (
	UPDATE factos_effect_sequences s SET state = 'running', released_at = clock_timestamp()
	FROM heads h, m
	WHERE s.effect_key = h.effect_key AND h.state = 'waiting'
		AND h.position <= $1 AND (m.reacting IS NULL OR h.position < m.reacting)
		-- The row itself still waits (an operator's skip may have
		-- committed since this statement's snapshot: the row is re-read
		-- here, the CTE is not) ...
		AND s.state = 'waiting'
		-- ... and no effect of its key runs. A head below a running
		-- effect appears when a row is planned, or retried, below one
		-- that went ahead (a retried skip, a reaction retried or replayed
		-- late): it waits for that one to finish, one at a time.
		AND NOT EXISTS (SELECT 1 FROM factos_effect_sequences r
			WHERE r.ordering_key = h.ordering_key AND r.state = 'running')
	RETURNING s.job_id
), jobs AS (
	UPDATE river_job j SET state = 'available'
	FROM rel WHERE j.id = rel.job_id AND j.state = 'pending'
	RETURNING j.queue
), notified AS (
	SELECT pg_notify(current_schema() || '.river_insert', json_build_object('queue', queue)::text)
	FROM (SELECT DISTINCT queue FROM jobs) q
)
SELECT (SELECT count(*) FROM rel), (SELECT count(*) FROM notified),
	EXISTS (SELECT 1 FROM heads h, m WHERE h.state = 'waiting' AND h.position > $1
		AND (m.reacting IS NULL OR h.position < m.reacting)),
	EXISTS (SELECT 1 FROM heads h WHERE h.state = 'waiting')`

// pass settles and releases with the last high-water mark, and again
// with a newer one if some head waits only for that: the barrier behind
// which the mark is read holds writers back briefly, so it is taken only
// when it can release something.
func (s *Sequencer) pass(ctx context.Context) (PassResult, error) {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	var res PassResult
	for range 2 {
		settled, released, stale, waiting, err := s.passWith(ctx, s.hwm)
		if err != nil {
			return res, err
		}
		res.Settled += settled
		res.Released += released
		s.waiting.Store(waiting)
		if !stale {
			break
		}
		hwm, err := s.store.HighWaterMark(ctx, s.hwm)
		if err != nil {
			return res, fmt.Errorf("error reading the high-water mark: %w", err)
		}
		if hwm == s.hwm {
			break
		}
		s.hwm = hwm
	}
	return res, nil
}

// passWith runs one transaction: the advisory lock (in a statement of its
// own, so that the next statements see every earlier pass), settle,
// release, commit: one round trip.
func (s *Sequencer) passWith(ctx context.Context, hwm eventstore.Position) (settled, released int, stale, waiting bool, err error) {
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL READ COMMITTED")
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, sequencerLockKey)
	b.Queue(settleSQL).Exec(func(ct pgconn.CommandTag) error {
		settled = int(ct.RowsAffected())
		return nil
	})
	var rel, notified int64
	b.Queue(releaseSQL, int64(hwm)).QueryRow(func(row pgx.Row) error { return row.Scan(&rel, &notified, &stale, &waiting) })
	b.Queue("COMMIT")
	if err := s.store.Pool().SendBatch(ctx, b).Close(); err != nil {
		return 0, 0, false, false, fmt.Errorf("error releasing ordered effects: %w", err)
	}
	return settled, int(rel), stale, waiting, nil
}

// maxTagKey bounds the part of a sequence tag taken from the key, so that
// the tag stays within River's 255 characters.
const maxTagKey = 200

var plainTag = regexp.MustCompile(`\A[\w-]*\w\z`)

// SequenceTag returns the River tag of the jobs of an ordering key's
// effects: "seq-" and the key, with every character River does not allow
// in a tag (other than ASCII letters, digits, '_' and '-') replaced by '_',
// and a hash of the key appended when that changed it or it is long, so
// that two keys get two tags. Filter River UI's job list by it to see a
// key's waiting (pending), running and finished effects. The key itself
// is in the job's metadata ("ordering_key").
func SequenceTag(orderingKey string) string {
	if len(orderingKey) <= maxTagKey && plainTag.MatchString(orderingKey) {
		return "seq-" + orderingKey
	}
	var b strings.Builder
	for _, r := range orderingKey {
		if b.Len() >= maxTagKey {
			break
		}
		if r < 128 && (r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(orderingKey))
	return "seq-" + b.String() + "-" + hex.EncodeToString(sum[:4])
}
