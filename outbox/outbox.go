// Package outbox turns committed records into River jobs inside the
// dispatch transaction that commits them.
//
// The Outbox is an eventstore.BatchHook: its job rows are written by the
// statement that inserts the dispatch's events (a CTE that reads their
// positions from the insert), so it costs no round trip, no statement and
// no lookup of its own. It inserts ONE reaction job per dispatch (per
// queue of the reactors concerned): the dispatch's records that some
// reactor subscribes to, and those reactors. The jobs exist if and only if
// the events do: a rolled-back or rejected dispatch leaves no job, and a
// failed job insert fails the dispatch, which then writes nothing. There
// is no relay process and no polling of the event table.
//
// The job row is written with SQL of our own against River's schema, as
// River's clients in other languages do (internal/riversql holds that
// contract and its test), and River's producers are told of it with River's
// own insert notification, at most once per queue per NotifyInterval.
//
// Subscriptions name a reactor and the records it wants (a query over types
// and tags). The reactors package registers the worker of these jobs;
// applications usually build subscriptions from a reactors.Registry.
package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/riversql"
)

// Defaults.
const (
	// DefaultQueue is the River queue of reaction jobs.
	DefaultQueue = "factos_reactions"
	// DefaultMaxAttempts of a reaction job before River discards it.
	DefaultMaxAttempts = 25
	// DefaultNotifyInterval is the shortest time between two notifications
	// of one queue: River's producers fetch at most once per FetchCooldown
	// anyway, and commits that notify serialize in PostgreSQL.
	DefaultNotifyInterval = 10 * time.Millisecond
)

// Kind is the River kind of every reaction job.
const Kind = "factos.reactions"

// ReactionArgs are the River job args of a dispatch's reactions: its
// stream, the records some reactor of the job subscribes to (position and
// type, in position order), and those reactors. They stay small and
// readable in River UI; the worker loads the records itself.
type ReactionArgs struct {
	Stream   string     `json:"stream,omitempty"`
	Events   []EventRef `json:"events"`
	Reactors []string   `json:"reactors"`
	// Replay names the replay that enqueued the job, if one did.
	Replay string `json:"replay,omitempty"`
}

// EventRef names one record of a reaction job.
type EventRef struct {
	Position int64  `json:"position"`
	Type     string `json:"type"`
}

// Kind implements river.JobArgs.
func (ReactionArgs) Kind() string { return Kind }

// Positions are the positions of the job's records.
func (a ReactionArgs) Positions() []int64 {
	out := make([]int64, len(a.Events))
	for i, e := range a.Events {
		out[i] = e.Position
	}
	return out
}

// Subscription routes records to a reactor.
type Subscription struct {
	// Reactor names the reactor. Letters, digits, '_', '-' and '.'.
	// Required.
	Reactor string
	// Query selects the records the reactor receives, by type and tags.
	// Required (use eventstore.AllEvents for every record).
	Query eventstore.Query
	// Queue is the River queue of its jobs. Reactors of one queue share a
	// dispatch's job. Default: DefaultQueue.
	Queue string
	// MaxAttempts before River discards a job. Default: DefaultMaxAttempts.
	MaxAttempts int
	// Priority of its jobs, 1 (first) to 4. Default: 1.
	Priority int
}

// Config configures an Outbox. The zero value is usable.
type Config struct {
	// NotifyInterval is the shortest time between two insert notifications
	// of one queue. Default: DefaultNotifyInterval (10ms).
	NotifyInterval time.Duration
}

// Outbox is the eventstore.BatchHook that enqueues reaction jobs.
type Outbox struct {
	subs   []Subscription
	groups []group
	notify *riversql.Notifier
}

// group is the reactors that share a job: same queue, attempts, priority.
type group struct {
	queue       string
	maxAttempts int
	priority    int
	subs        []Subscription
}

var reactorName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// New returns an outbox for subs.
func New(subs []Subscription, cfg *Config) (*Outbox, error) {
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.NotifyInterval == 0 {
		c.NotifyInterval = DefaultNotifyInterval
	}
	if c.NotifyInterval < 0 {
		return nil, errors.New("outbox: NotifyInterval must not be negative")
	}
	seen := map[string]bool{}
	o := &Outbox{}
	var queues []string
	for i, s := range subs {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("outbox: subscription %d: %w", i, err)
		}
		if seen[s.Reactor] {
			return nil, fmt.Errorf("outbox: reactor %q subscribed twice", s.Reactor)
		}
		seen[s.Reactor] = true
		s = s.WithDefaults()
		o.subs = append(o.subs, s)
		gi := slices.IndexFunc(o.groups, func(g group) bool {
			return g.queue == s.Queue && g.maxAttempts == s.MaxAttempts && g.priority == s.Priority
		})
		if gi < 0 {
			o.groups = append(o.groups, group{queue: s.Queue, maxAttempts: s.MaxAttempts, priority: s.Priority})
			gi = len(o.groups) - 1
			queues = append(queues, s.Queue)
		}
		o.groups[gi].subs = append(o.groups[gi].subs, s)
	}
	o.notify = riversql.NewNotifier(c.NotifyInterval, queues...)
	return o, nil
}

// Validate reports a missing or malformed field.
func (s Subscription) Validate() error {
	switch {
	case !reactorName.MatchString(s.Reactor):
		return fmt.Errorf("reactor name %q must match %s", s.Reactor, reactorName)
	case s.Query.IsEmpty():
		return fmt.Errorf("reactor %q: empty query (use eventstore.AllEvents for every record)", s.Reactor)
	case s.MaxAttempts < 0 || s.Priority < 0 || s.Priority > 4:
		return fmt.Errorf("reactor %q: MaxAttempts must be >= 0 and Priority 0..4", s.Reactor)
	}
	return nil
}

// WithDefaults returns a copy with defaults filled in.
func (s Subscription) WithDefaults() Subscription {
	if s.Queue == "" {
		s.Queue = DefaultQueue
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.Priority == 0 {
		s.Priority = 1
	}
	return s
}

// Subscriptions returns the subscriptions with defaults filled in.
func (o *Outbox) Subscriptions() []Subscription { return slices.Clone(o.subs) }

// Subscription returns the subscription of a reactor.
func (o *Outbox) Subscription(reactor string) (Subscription, bool) {
	i := slices.IndexFunc(o.subs, func(s Subscription) bool { return s.Reactor == reactor })
	if i < 0 {
		return Subscription{}, false
	}
	return o.subs[i], true
}

// Planned is a reaction job the outbox plans for an append: its options,
// its reactors, and which of the appended events it covers (by index).
type Planned struct {
	Queue       string
	MaxAttempts int
	Priority    int
	Reactors    []string
	Events      []int
}

// Plan returns the reaction jobs for events of one append: one per group
// of reactors (same queue, attempts and priority) that subscribes to at
// least one event, covering the events some reactor of the group wants.
func (o *Outbox) Plan(events []eventstore.EventData) []Planned {
	var out []Planned
	for _, g := range o.groups {
		p := Planned{Queue: g.queue, MaxAttempts: g.maxAttempts, Priority: g.priority}
		wanted := make([]bool, len(events))
		for _, s := range g.subs {
			matched := false
			for i, ev := range events {
				if s.Query.Matches(ev.Type, ev.Tags) {
					wanted[i], matched = true, true
				}
			}
			if matched {
				p.Reactors = append(p.Reactors, s.Reactor)
			}
		}
		for i, w := range wanted {
			if w {
				p.Events = append(p.Events, i)
			}
		}
		if len(p.Reactors) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// reactionJobSQL is the body of the CTE that inserts one reaction job in
// the statement that appends its events, from the CTE "appended" of the
// events inserted (see eventstore.Appending.Join). %[1]s restricts it to
// the job's events when they are not all of the append's. HAVING writes no
// job when no event was inserted (the dispatch restarts), since an
// aggregate without GROUP BY returns a row even over no input. Its args
// are the stream (%[2]s), the events' positions and types, and the
// reactors (%[3]s); its tags (%[7]s) name the stream and the event types;
// its metadata is %[8]s plus the events' ids, types and positions.
const reactionJobSQL = riversql.InsertPrefix + `
SELECT jsonb_build_object('stream', %[2]s::text,
		'events', jsonb_agg(jsonb_build_object('position', e.position, 'type', e.type) ORDER BY e.position),
		'reactors', %[3]s::jsonb),
	'` + Kind + `', %[4]s::int2, %[5]s::int2, %[6]s::text, 'available', %[7]s::varchar(255)[],
	%[8]s::jsonb || jsonb_build_object('events', jsonb_agg(jsonb_build_object('id', e.id, 'type', e.type, 'position', e.position) ORDER BY e.position))
FROM appended e%[1]s
HAVING count(*) > 0`

// Metadata keys of the reaction and effect jobs, beside the W3C trace
// context (eventstore.MetadataTraceParent and MetadataTraceState) that the
// reaction and effect workers continue the command's trace from.
const (
	MetadataTraceID   = "trace_id"
	MetadataCommandID = "command_id"
	MetadataStream    = "stream"
)

// JobMetadata is the metadata of a job that reacts to events: the trace
// context the events carry (all of one dispatch carry the same), its trace
// id for people searching a tracing backend, the command id and the
// stream. Empty values are left out.
func JobMetadata(event eventstore.Metadata, commandID, stream string) map[string]string {
	md := map[string]string{}
	if tp := event[eventstore.MetadataTraceParent]; tp != "" {
		md[eventstore.MetadataTraceParent] = tp
		if ts := event[eventstore.MetadataTraceState]; ts != "" {
			md[eventstore.MetadataTraceState] = ts
		}
		// version-traceid-spanid-flags
		if len(tp) >= 35 && tp[2] == '-' {
			md[MetadataTraceID] = tp[3:35]
		}
	}
	if commandID != "" {
		md[MetadataCommandID] = commandID
	}
	if stream != "" {
		md[MetadataStream] = stream
	}
	return md
}

// QueueAfterAppend implements eventstore.BatchHook: the reaction jobs of
// the append join the statement that inserts its events, and River's
// insert notification is queued after it.
func (o *Outbox) QueueAfterAppend(b *pgx.Batch, a eventstore.Appending) error {
	for _, p := range o.Plan(a.Events) {
		reactors, err := json.Marshal(p.Reactors)
		if err != nil {
			return err
		}
		values := []string{a.Stream}
		for _, e := range p.Events {
			values = append(values, a.Events[e].Type)
		}
		md, err := json.Marshal(JobMetadata(a.Events[p.Events[0]].Metadata, a.CommandID, a.Stream))
		if err != nil {
			return err
		}
		only := ""
		if len(p.Events) < len(a.Events) {
			ids := make([][16]byte, len(p.Events))
			for i, e := range p.Events {
				ids[i] = a.Events[e].ID
			}
			only = " WHERE e.id = ANY(" + a.Bind(ids) + "::uuid[])"
		}
		a.Join(fmt.Sprintf(reactionJobSQL, only, a.Bind(a.Stream), a.Bind(reactors), a.Bind(int16(p.MaxAttempts)),
			a.Bind(int16(p.Priority)), a.Bind(p.Queue), a.Bind(riversql.Tags(values...)), a.Bind(md)))
		o.notify.Queue(b, p.Queue)
	}
	return nil
}
