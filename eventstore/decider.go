package eventstore

// Decider is a pure decision function over a consistency context: the
// store folds the context's events into a state with Evolve, starting from
// Initial, and asks Decide which new events the command produces.
//
// Deciders must be pure. They may be called more than once for one command
// (a dispatch retries after conflicts) and their results are discarded
// unless the append commits, so they must not perform IO, read clocks or
// random sources, or mutate shared state. Put any such input in the command.
type Decider[C, E, S any] struct {
	// Initial returns the state before any event. Nil means the zero S.
	Initial func() S

	// Evolve folds one event into the state. It must not mutate the state
	// it is given if that state is shared (maps, slices): return a new one.
	Evolve func(state S, event E) S

	// Decide returns the events the command produces given the state, or a
	// domain error that rejects the command. A rejection appends nothing
	// and reaches the caller as a *RejectedError wrapping the error.
	Decide func(state S, cmd C) ([]E, error)
}

// Fold runs Evolve over events from the initial state.
func (d Decider[C, E, S]) Fold(events []E) S {
	var state S
	if d.Initial != nil {
		state = d.Initial()
	}
	for _, e := range events {
		state = d.Evolve(state, e)
	}
	return state
}

// View is a pure fold of records into a read model.
type View[E, S any] struct {
	// Initial returns the state before any record. Nil means the zero S.
	Initial func() S
	// Evolve folds one record into the state.
	Evolve func(state S, rec Record[E]) S
}

// Fold runs the view over records from its initial state.
func (v View[E, S]) Fold(records []Record[E]) S {
	var state S
	if v.Initial != nil {
		state = v.Initial()
	}
	for _, r := range records {
		state = v.Evolve(state, r)
	}
	return state
}

// PlannedEffect is a side effect a reactor plans for a committed record.
// The reactors package runs each planned effect as a durable job.
type PlannedEffect struct {
	// Kind names the handler that performs the effect.
	Kind string

	// Key identifies the effect for idempotency: the same logical effect
	// must always get the same key, and different effects different keys.
	// A key derived from the record's event id and the reactor's purpose is
	// a good choice.
	Key string

	// Args are the handler's input, encoded as JSON.
	Args any

	// OrderingKey, if set, puts the effect in the sequence of that key:
	// effects with the same ordering key run one at a time, in the order
	// of the positions of the records that planned them (and, for one
	// record, in the order planned); effects with different keys, and
	// effects without one, run in parallel as usual. Use the entity the
	// effects concern, such as a tag ("buyer:42"). At most
	// MaxOrderingKeyBytes bytes of valid UTF-8 without control
	// characters. Default: none (unordered).
	OrderingKey string
}

// MaxOrderingKeyBytes bounds PlannedEffect.OrderingKey.
const MaxOrderingKeyBytes = 255

// MaxEffectKeyBytes bounds PlannedEffect.Key: a key is stored in a unique
// index, whose entries PostgreSQL bounds at about 2,700 bytes.
const MaxEffectKeyBytes = 1024

// Validate reports an effect the reactors package would refuse to enqueue:
// one without a kind, with a key that is empty, longer than
// MaxEffectKeyBytes, not valid UTF-8 or holding a control character, or
// with such an ordering key, as an *InvalidInputError (ErrInvalidInput).
// Args are checked when the reaction encodes them: Args that JSON cannot
// encode (a NaN, a channel) fail the reaction of that record too.
func (e PlannedEffect) Validate() error {
	if e.Kind == "" {
		return &InvalidInputError{Field: "kind", Reason: "empty"}
	}
	if err := checkName("key", e.Key, MaxEffectKeyBytes); err != nil {
		return err
	}
	if e.OrderingKey == "" {
		return nil
	}
	return checkName("ordering_key", e.OrderingKey, MaxOrderingKeyBytes)
}

// ReactFunc reacts to a committed record by planning effects: the React of
// a reactor. Like deciders, it must be pure: the effects it returns are
// executed later, with retries, by effect handlers.
type ReactFunc[E any] func(rec Record[E]) ([]PlannedEffect, error)
