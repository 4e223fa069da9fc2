package eventstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file holds the dispatch algorithm: one transaction that locks, reads
// the context, decides, checks, appends, runs the hooks and commits, and the
// retry loop around it. Dispatch (typed, with a decider) and Append (raw
// events with a condition) both run through execute.

// Handler binds what it takes to dispatch a command: its decider, the codec
// of its events, the stream its events go to and its consistency context.
type Handler[C, E, S any] struct {
	// Decider decides the command. Decide and Evolve are required.
	Decider Decider[C, E, S]

	// Codec encodes the decided events and decodes the context. Required.
	Codec Codec[E]

	// Stream names the stream the new events are appended to. Required.
	Stream func(cmd C) string

	// Query returns the command's consistency context: the events its
	// decision depends on, across any streams. The events are appended only
	// if no event matching the query was appended after the ones the
	// decision saw. Nil selects the stream-revision dispatch instead: the
	// context is the stream's own events.
	Query func(cmd C) Query
}

// DispatchOpts are per-dispatch options. A nil *DispatchOpts is valid.
type DispatchOpts struct {
	// CommandID makes the dispatch idempotent: it is stored, unique, in the
	// dispatch transaction, and a later dispatch with the same id appends
	// nothing and returns the records of the first (Result.Duplicate).
	// Use a deterministic id, such as one a workflow derived. An id names
	// one command: reused for a dispatch to another stream it is refused
	// with a *CommandIDReusedError. Default: none.
	CommandID string

	// Fingerprint identifies the command CommandID names, for example
	// CommandFingerprint(name, payload). It is stored with the id; a later
	// dispatch under the same id with another fingerprint is refused with
	// a *CommandIDReusedError (nothing appended) rather than answered with
	// the first command's result. It must be the same on every retry of
	// the command, so derive it from what the retry resends, not from the
	// time or a random value. Ids stored without a fingerprint (before
	// migration 6, or by a dispatch that gave none) and dispatches that
	// give none are compared by stream only. At most 64 bytes. Default:
	// none.
	Fingerprint []byte

	// Metadata is added to every appended event's metadata (it wins over
	// the codec's on equal keys). Default: none.
	Metadata Metadata

	// Hooks run after the store's configured hooks, inside the transaction.
	Hooks []Hook
}

// CommandFingerprint returns a fingerprint of the command named name with
// the encoded payload: the SHA-256 of the name, a zero byte and the
// payload. Encode the payload the same way on every retry (the bytes a
// workflow recorded, say): a field added to the command type between two
// attempts must not change it.
func CommandFingerprint(name string, payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(nil)
}

// Result is what a dispatch committed.
type Result[E any] struct {
	// Records are the appended events, in position order. Empty when the
	// decision produced no events.
	Records []Record[E]
	// Revision is the stream's revision after the dispatch. For a
	// Duplicate it is the revision of the first dispatch's last record or,
	// when that dispatch appended nothing, the stream's revision now (the
	// command ledger does not record the revision of an empty decision).
	Revision int64
	// Duplicate is set when CommandID had already been dispatched: nothing
	// was appended and Records are those of the first dispatch.
	Duplicate bool
	// Attempts is how many times the transaction ran (1 without retries).
	Attempts int
}

// Dispatch runs cmd through h: in one transaction it locks the command's
// context, reads and folds it, decides, and appends the decided events only
// if the context is unchanged, retrying transient conflicts. Errors:
// *RejectedError (the decider's domain error), *ConflictError,
// *DecodeError, *EncodeError, *InvalidInputError or *StoreError. On any
// error nothing is appended.
func Dispatch[C, E, S any](ctx context.Context, s *Store, h Handler[C, E, S], cmd C, opts *DispatchOpts) (*Result[E], error) {
	if opts == nil {
		opts = &DispatchOpts{}
	}
	start := time.Now()
	if err := h.check(); err != nil {
		s.observe("dispatch", start, 0, 0, err)
		return nil, err
	}
	p := &plan{
		op:          "dispatch",
		stream:      h.Stream(cmd),
		commandID:   opts.CommandID,
		fingerprint: opts.Fingerprint,
		metadata:    opts.Metadata,
		hooks:       opts.Hooks,
	}
	if h.Query != nil {
		p.query = h.Query(cmd)
		if err := s.cfg.Limits.checkQuery("query", p.query); err != nil {
			s.observe("dispatch", start, 0, 0, err)
			return nil, err
		}
		p.query = p.query.normalized()
	} else {
		p.streamMode = true
	}

	var decided []E
	p.decide = func(context []RawRecord) ([]EventData, error) {
		var state S
		if h.Decider.Initial != nil {
			state = h.Decider.Initial()
		}
		for i := range context {
			ev, err := h.Codec.Decode(context[i])
			if err != nil {
				return nil, &DecodeError{Position: context[i].Position, Type: context[i].Type, Version: context[i].Version, Err: err}
			}
			state = h.Decider.Evolve(state, ev)
		}
		out, err := h.Decider.Decide(state, cmd)
		if err != nil {
			return nil, &RejectedError{Err: err}
		}
		decided = out
		data := make([]EventData, len(out))
		for i, ev := range out {
			d, err := h.Codec.Encode(ev)
			if err != nil {
				return nil, &EncodeError{Index: i, Err: err}
			}
			data[i] = d
		}
		return data, nil
	}

	out, err := s.execute(ctx, p)
	if err != nil {
		return nil, err
	}
	res := &Result[E]{Revision: out.revision, Duplicate: out.duplicate, Attempts: out.attempts, Records: make([]Record[E], len(out.records))}
	for i, raw := range out.records {
		res.Records[i].RawRecord = raw
		if out.duplicate {
			ev, err := h.Codec.Decode(raw)
			if err != nil {
				return nil, &DecodeError{Position: raw.Position, Type: raw.Type, Version: raw.Version, Err: err}
			}
			res.Records[i].Event = ev
		} else {
			res.Records[i].Event = decided[i]
		}
	}
	return res, nil
}

func (h Handler[C, E, S]) check() error {
	switch {
	case h.Decider.Decide == nil:
		return &InvalidInputError{Field: "handler.Decider.Decide", Reason: "nil"}
	case h.Decider.Evolve == nil:
		return &InvalidInputError{Field: "handler.Decider.Evolve", Reason: "nil"}
	case h.Codec == nil:
		return &InvalidInputError{Field: "handler.Codec", Reason: "nil"}
	case h.Stream == nil:
		return &InvalidInputError{Field: "handler.Stream", Reason: "nil"}
	}
	return nil
}

// AppendRequest appends events decided outside the store, guarded by a
// condition from an earlier Read or an expected stream revision.
type AppendRequest struct {
	// Stream the events go to. Required.
	Stream string
	// Events to append, at least one.
	Events []EventData
	// Condition, if set, fails the append with a *ConflictError when an
	// event matching its query lies after its position.
	Condition *AppendCondition
	// ExpectedRevision, if set, fails the append with a *ConflictError
	// unless the stream is at this revision (0: the stream has no events).
	// Default: nil, any revision. See Revision.
	ExpectedRevision *int64
	// CommandID, Fingerprint, Metadata and Hooks as in DispatchOpts.
	CommandID   string
	Fingerprint []byte
	Metadata    Metadata
	Hooks       []Hook
}

// AppendResult is what an append committed.
type AppendResult struct {
	Records   []RawRecord
	Revision  int64
	Duplicate bool
	Attempts  int
}

// Append appends events if req's condition and expected revision hold.
// Unlike Dispatch it does not decide, so a failed condition is returned as
// a *ConflictError at once rather than retried: the caller must read again
// and decide again.
func (s *Store) Append(ctx context.Context, req AppendRequest) (*AppendResult, error) {
	start := time.Now()
	p := &plan{
		op:          "append",
		stream:      req.Stream,
		condition:   req.Condition,
		expected:    req.ExpectedRevision,
		commandID:   req.CommandID,
		fingerprint: req.Fingerprint,
		metadata:    req.Metadata,
		hooks:       req.Hooks,
		events:      slices.Clone(req.Events),
	}
	if len(p.events) == 0 {
		err := &InvalidInputError{Field: "events", Reason: "empty"}
		s.observe("append", start, 0, 0, err)
		return nil, err
	}
	if p.expected != nil && *p.expected < 0 {
		// No stream is ever at a negative revision: a conflict would
		// send the caller to read and retry for ever.
		err := &InvalidInputError{Field: "expected revision", Reason: fmt.Sprintf("negative (%d)", *p.expected)}
		s.observe("append", start, 0, 0, err)
		return nil, err
	}
	if p.condition != nil {
		if err := s.cfg.Limits.checkQuery("condition.query", p.condition.Query); err != nil {
			s.observe("append", start, 0, 0, err)
			return nil, err
		}
		c := *p.condition
		c.Query = c.Query.normalized()
		p.condition = &c
	}
	out, err := s.execute(ctx, p)
	if err != nil {
		return nil, err
	}
	return &AppendResult{Records: out.records, Revision: out.revision, Duplicate: out.duplicate, Attempts: out.attempts}, nil
}

// plan is one append: what to lock, what to read, how to decide, what to
// check and what to write.
type plan struct {
	op          string
	stream      string
	query       Query // normalized consistency context (query mode)
	streamMode  bool  // the context is the stream's events
	condition   *AppendCondition
	expected    *int64
	commandID   string
	fingerprint []byte
	metadata    Metadata
	hooks       []Hook

	// Either events are fixed (Append) or decide produces them from the
	// context read in the transaction (Dispatch).
	events []EventData
	decide func(context []RawRecord) ([]EventData, error)
}

type outcome struct {
	records   []RawRecord
	revision  int64
	duplicate bool
	attempts  int
}

// retry marks an attempt that failed for a reason another attempt can cure.
type retry struct {
	reason  string
	err     error
	writes  []EventData // events whose keys the next attempt takes up front
	backoff bool        // wait before the next attempt
}

func (r *retry) Error() string { return r.reason }

// execute validates the plan and runs attempts until one commits, one fails
// for good, or the attempts are used up.
func (s *Store) execute(ctx context.Context, p *plan) (_ *outcome, err error) {
	start := time.Now()
	fail := func(attempts int, err error) (*outcome, error) {
		s.observe(p.op, start, attempts, 0, err)
		return nil, err
	}
	l := s.cfg.Limits
	if err := l.checkStream(p.stream); err != nil {
		return fail(0, err)
	}
	if err := l.checkCommandID(p.commandID); err != nil {
		return fail(0, err)
	}
	if err := checkFingerprint(p.commandID, p.fingerprint); err != nil {
		return fail(0, err)
	}
	if err := l.checkMetadata("metadata", p.metadata); err != nil {
		return fail(0, err)
	}
	// The caller's metadata is checked before the trace context joins it:
	// tracing must not make a valid dispatch invalid.
	ctx, span := s.startSpan(ctx, p)
	var (
		out      *outcome
		attempts int
	)
	defer func() { endSpan(span, out, attempts, err) }()
	if p.events != nil {
		p.events = s.withMetadata(p.events, p.metadata)
		if err := l.checkEvents(p.events); err != nil {
			return fail(0, err)
		}
	}
	if err := s.checkStrategy(ctx); err != nil {
		return fail(0, err)
	}

	// Events a failed attempt decided: the next takes their write keys in
	// its first, ordered acquisition.
	hint := p.events
	var last *retry
	for attempt := 1; attempt <= s.cfg.MaxAttempts; attempt++ {
		attempts = attempt
		o, err := s.attempt(ctx, p, hint)
		if err == nil {
			o.attempts = attempt
			out = o
			if o.duplicate {
				// Committed before, not now: no event appended by this call.
				s.observeOutcome(p.op, start, attempt, 0, "duplicate", nil)
			} else {
				s.observe(p.op, start, attempt, len(o.records), nil)
			}
			return o, nil
		}
		if !errors.As(err, &last) {
			return fail(attempt, err)
		}
		s.cfg.Logger.DebugContext(ctx, "eventstore: retrying", "op", p.op, "stream", p.stream, "attempt", attempt, "reason", last.reason)
		if last.writes != nil {
			hint = last.writes
		}
		if last.backoff && attempt < s.cfg.MaxAttempts {
			if err := sleep(ctx, s.backoff(attempt)); err != nil {
				return fail(attempt, storeError(ctx, "waiting to retry", err))
			}
		}
	}
	return fail(s.cfg.MaxAttempts, &ConflictError{Reason: last.reason, Attempts: s.cfg.MaxAttempts, Err: last.err})
}

// reads are the queries whose matching events the plan depends on.
func (p *plan) reads() []Query {
	var qs []Query
	if !p.streamMode && p.decide != nil {
		qs = append(qs, p.query)
	}
	if p.condition != nil {
		qs = append(qs, p.condition.Query)
	}
	return qs
}

// attempt runs the transaction once, in two round trips when the hooks need
// none of their own:
//
//  1. BEGIN, the locks of the context, the command id, the stream head, and
//     the context's events (or the condition's check);
//  2. the shared all key and the write keys not yet held (both taken before
//     any position is drawn), the insert, and COMMIT.
//
// Between them the decider runs in Go. Hooks that need the transaction run
// between the insert and COMMIT, which then travels alone.
func (s *Store) attempt(ctx context.Context, p *plan, hint []EventData) (_ *outcome, err error) {
	st := s.strategy
	t, err := s.beginTxn(ctx)
	if err != nil {
		return nil, err
	}
	defer t.end(ctx)
	commitErr := func(op string, err error) error {
		err = s.classify(ctx, op, err)
		var se *StoreError
		if errors.As(err, &se) && t.commitOutcomeUnknown(se.Err) {
			se.CommitUnknown = true
		}
		return err
	}

	// Round trip 1. The locks come first, in their own statement, so every
	// later statement's snapshot is taken after they are granted: at READ
	// COMMITTED that snapshot contains every commit of every writer that
	// held a conflicting key.
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{BeginQuery: st.begin})
	if st.tableLock {
		b.Queue(lockTableSQL)
	}
	reads := p.reads()
	held := st.dispatchKeys(p.stream, reads, hint)
	if len(held) > 0 {
		keys, excl := held.ordered()
		b.Queue(lockSQL, keys, excl)
	}

	var (
		prior            []int64
		priorStream      string
		priorFingerprint []byte
	)
	priorFound := false
	if p.commandID != "" {
		b.Queue(commandSQL, p.commandID).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&prior, &priorStream, &priorFingerprint)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			priorFound = err == nil
			return err
		})
	}
	var head int64
	b.Queue(streamHeadSQL, p.stream).QueryRow(func(row pgx.Row) error { return row.Scan(&head) })

	var context []RawRecord
	collect := func(rows pgx.Rows) error {
		var err error
		context, err = pgx.CollectRows(rows, scanRecord)
		return err
	}
	if p.decide != nil {
		if p.streamMode {
			b.Queue(streamReadSQL, p.stream, int64(0)).Query(collect)
		} else {
			var a args
			b.Queue(readSQL(p.query, 0, 0, &a), a...).Query(collect)
		}
	}
	conditionFailed := false
	if p.condition != nil {
		var after Position
		if p.condition.After != nil {
			after = *p.condition.After
		}
		var a args
		b.Queue(existsSQL(p.condition.Query, after, &a), a...).QueryRow(func(row pgx.Row) error { return row.Scan(&conditionFailed) })
	}
	if err := t.first(ctx, b); err != nil {
		return nil, s.classify(ctx, "locking and reading the context", err)
	}

	if priorFound {
		// A command id names one command. Reused for another stream or
		// with another fingerprint it belongs to a different command, whose
		// stored records this dispatch's codec may not even decode: refuse
		// rather than answer with someone else's result. Nothing has been
		// written; the deferred end rolls the transaction back.
		if priorStream != p.stream {
			return nil, &CommandIDReusedError{CommandID: p.commandID, Stream: p.stream, PriorStream: priorStream,
				Reason: fmt.Sprintf("already used by a dispatch to stream %q, not %q", priorStream, p.stream)}
		}
		if priorFingerprint != nil && p.fingerprint != nil && !bytes.Equal(priorFingerprint, p.fingerprint) {
			return nil, &CommandIDReusedError{CommandID: p.commandID, Stream: p.stream, PriorStream: priorStream,
				Reason: "already used by another command (its fingerprint differs)"}
		}
		records, err := readPositions(ctx, t.tx, prior)
		if err != nil {
			return nil, s.classify(ctx, "reading the command's earlier records", err)
		}
		rev := head
		if len(records) > 0 {
			rev = records[len(records)-1].Revision
		}
		return &outcome{records: records, revision: rev, duplicate: true}, nil
	}

	// Decide, after checking the caller's expectations.
	if p.expected != nil && head != *p.expected {
		return nil, &ConflictError{Reason: fmt.Sprintf("stream %q is at revision %d, expected %d", p.stream, head, *p.expected), Attempts: 1}
	}
	if conditionFailed {
		return nil, &ConflictError{Reason: "an event matching the append condition was appended after position " + afterString(p.condition.After), Attempts: 1}
	}
	events := p.events
	if p.decide != nil {
		if events, err = p.decide(context); err != nil {
			return nil, err
		}
		events = s.withMetadata(events, p.metadata)
		if err := s.cfg.Limits.checkEvents(events); err != nil {
			return nil, err
		}
	}

	if len(events) == 0 {
		b := &pgx.Batch{}
		if p.commandID != "" {
			b.Queue(emptyCommandSQL, p.commandID, p.stream, p.fingerprint)
		}
		if err := t.commitWith(ctx, b); err != nil {
			return nil, commitErr("recording the command and committing", err)
		}
		return &outcome{revision: head}, nil
	}

	// Round trip 2. The write keys of a decision are known only now.
	// Waiting for them here, out of order, could deadlock, so the insert
	// tries them without waiting; if one is taken (a reader of this context
	// holds it), nothing is inserted and the next attempt takes them in its
	// first, ordered acquisition. If the keys held and the keys wanted would
	// together exceed the budget, the next attempt takes the wanted ones
	// instead.
	var try lockSet
	if want := st.dispatchKeys(p.stream, reads, events); want != nil {
		try = held.missing(want)
		if len(union(held, want)) > s.cfg.MaxLockKeys {
			return nil, &retry{reason: "lock keys over budget", writes: events}
		}
	}
	// The batch hooks join the insert statement and queue statements to
	// send after it.
	stmt, after := &appendStatement{}, &pgx.Batch{}
	for _, h := range s.cfg.BatchHooks {
		if err := h.QueueAfterAppend(after, Appending{Stream: p.stream, Events: events, CommandID: p.commandID, stmt: stmt}); err != nil {
			return nil, &StoreError{Op: "preparing an append hook", Err: err}
		}
	}
	b = &pgx.Batch{}
	records := s.queueInsert(b, p, events, head, try, stmt)
	b.QueuedQueries = append(b.QueuedQueries, after.QueuedQueries...)
	hooks := slices.Concat(s.cfg.Hooks, p.hooks)
	if len(hooks) == 0 {
		if err := t.commitWith(ctx, b); err != nil {
			return nil, commitErr("appending events and committing", err)
		}
	} else {
		if err := t.send(ctx, b); err != nil {
			return nil, s.classify(ctx, "appending events", err)
		}
	}
	if err := records.check(len(events)); err != nil {
		return nil, err
	}
	if records.list == nil {
		// A write key was taken: nothing was inserted (and what committed,
		// if anything, wrote nothing).
		return nil, &retry{reason: "write lock unavailable", writes: events}
	}
	if len(hooks) > 0 {
		for _, h := range hooks {
			if err := h.AfterAppend(ctx, t.tx, records.list); err != nil {
				return nil, s.classify(ctx, "running an append hook", err)
			}
		}
		if err := t.commitWith(ctx, &pgx.Batch{}); err != nil {
			return nil, commitErr("committing", err)
		}
	}
	return &outcome{records: records.list, revision: records.list[len(records.list)-1].Revision}, nil
}

// inserted collects the records an insert statement returns.
type inserted struct {
	list []RawRecord
	err  error
}

// check reports an insert that returned some but not all of its events.
func (r *inserted) check(n int) error {
	if r.err != nil {
		return r.err
	}
	if len(r.list) != 0 && len(r.list) != n {
		return &StoreError{Op: "appending events", Err: fmt.Errorf("inserted %d of %d events", len(r.list), n)}
	}
	return nil
}

// queueInsert queues the statements that append events: the shared all
// key, then one statement that tries the missing write keys and inserts
// the events, their tag rows, the command id and the batch hooks' rows
// (hooks). The records are filled in
// when the batch's results are read; none if a try-lock failed.
func (s *Store) queueInsert(b *pgx.Batch, p *plan, events []EventData, head int64, try lockSet, hooks *appendStatement) *inserted {
	n := len(events)
	ids := make([][16]byte, n)
	types := make([]string, n)
	versions := make([]int32, n)
	tags := make([]string, n)
	metadata := make([]string, n)
	data := make([][]byte, n)
	for i, ev := range events {
		ids[i] = ev.ID
		types[i] = ev.Type
		versions[i] = int32(ev.Version)
		tags[i] = strings.Join(ev.Tags, "\x1f")
		metadata[i] = encodeMetadata(ev.Metadata)
		data[i] = ev.Data
		if data[i] == nil {
			data[i] = []byte{}
		}
	}
	var cmdID *string
	if p.commandID != "" {
		cmdID = &p.commandID
	}
	tryKeys, tryExcl := try.ordered()

	// Every writer holds the all key shared from before it draws a position
	// until it commits: a catch-up reader that takes it exclusively, even
	// briefly, then knows every position below the sequence's value is
	// committed. It is the last key in the global order, so waiting for it
	// here cannot deadlock.
	b.Queue(allSharedSQL, allKey)
	out := &inserted{}
	params := append([]any{ids, types, versions, tags, metadata, data, p.stream, head, tryKeys, tryExcl, cmdID, p.fingerprint}, hooks.params...)
	b.Queue(hooks.sql(), params...).Query(func(rows pgx.Rows) error {
		i := 0
		for rows.Next() {
			if i >= n {
				out.err = &StoreError{Op: "appending events", Err: fmt.Errorf("inserted more than %d events", n)}
				return nil
			}
			var pos int64
			r := RawRecord{ID: events[i].ID, Stream: p.stream, Type: events[i].Type, Version: events[i].Version,
				Tags: events[i].Tags, Metadata: events[i].Metadata, Data: events[i].Data}
			if err := rows.Scan(&pos, &r.Revision, &r.RecordedAt); err != nil {
				return err
			}
			r.Position = Position(pos)
			if r.Tags == nil {
				r.Tags = []string{}
			}
			out.list = append(out.list, r)
			i++
		}
		return rows.Err()
	})
	return out
}

// classify turns a database error into a retry or a typed error.
func (s *Store) classify(ctx context.Context, op string, err error) error {
	code, constraint := pgCode(err)
	switch {
	case code == "40001":
		return &retry{reason: "serialization failure", err: err, backoff: true}
	case code == "40P01":
		return &retry{reason: "deadlock", err: err, backoff: true}
	case code == "23505" && constraint == "factos_events_stream_revision_key":
		return &retry{reason: "concurrent append to the stream", err: err, backoff: true}
	case code == "23505" && constraint == "factos_commands_pkey":
		// A concurrent dispatch with the same command id committed first;
		// the next attempt finds it and answers with its result, or
		// refuses if it was another command.
		return &retry{reason: "concurrent dispatch of the same command id", err: err}
	case code == "23505" && constraint == "factos_events_id_key":
		return &InvalidInputError{Field: "events.id", Reason: "an event with this id is already stored"}
	}
	return storeError(ctx, op, err)
}

func (s *Store) backoff(attempt int) time.Duration {
	d := s.cfg.RetryBaseDelay << min(attempt-1, 20)
	if d > s.cfg.RetryMaxDelay || d <= 0 {
		d = s.cfg.RetryMaxDelay
	}
	// Full jitter: racing dispatches spread out instead of colliding again.
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func (s *Store) observe(op string, start time.Time, attempts, events int, err error) {
	s.observeOutcome(op, start, attempts, events, outcomeOf(err), err)
}

func (s *Store) observeOutcome(op string, start time.Time, attempts, events int, outcome string, err error) {
	if s.cfg.Observer == nil {
		return
	}
	s.cfg.Observer(DispatchInfo{Op: op, Outcome: outcome, Strategy: s.cfg.LockStrategy,
		Attempts: attempts, Events: events, Duration: time.Since(start), Err: err})
}

// withMetadata returns events with extra merged into each event's metadata.
// It copies rather than mutates: the codec's maps are not ours.
func (s *Store) withMetadata(events []EventData, extra Metadata) []EventData {
	if len(extra) == 0 {
		return events
	}
	out := slices.Clone(events)
	for i := range out {
		md := make(Metadata, len(out[i].Metadata)+len(extra))
		maps.Copy(md, out[i].Metadata)
		maps.Copy(md, extra)
		out[i].Metadata = md
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func afterString(p *Position) string {
	if p == nil {
		return "(none)"
	}
	return fmt.Sprint(int64(*p))
}
