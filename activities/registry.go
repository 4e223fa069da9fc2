package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"

	"github.com/factos-go/factos/eventstore"
)

// Registry binds command names to event store handlers. It is the one place
// a command's payload is decoded, so the Temporal activity and direct
// callers (an HTTP handler, a CLI) dispatch the same way.
type Registry struct {
	store    *eventstore.Store
	commands map[string]*command
	errors   *DomainErrors
}

type command struct {
	name     string
	dispatch func(ctx context.Context, payload []byte, opts *eventstore.DispatchOpts) (*Result, error)
}

// Config configures a Registry. The zero value is usable.
type Config struct {
	// DomainErrors names the domain errors deciders return, so that a
	// rejection crosses Temporal as an application error of that type and
	// maps back to the same error value in the workflow. Unnamed domain
	// errors cross as type ErrTypeRejected. Default: none.
	DomainErrors map[string]error
}

// NewRegistry returns an empty registry dispatching to store.
func NewRegistry(store *eventstore.Store, cfg *Config) *Registry {
	if cfg == nil {
		cfg = &Config{}
	}
	return &Registry{store: store, commands: map[string]*command{}, errors: NewDomainErrors(cfg.DomainErrors)}
}

var commandName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// Register binds name to h. Payloads of name are decoded as JSON into C,
// strictly: unknown fields and trailing data are refused.
func Register[C, E, S any](r *Registry, name string, h eventstore.Handler[C, E, S]) error {
	if !commandName.MatchString(name) {
		return fmt.Errorf("activities: command name %q must match %s", name, commandName)
	}
	if _, dup := r.commands[name]; dup {
		return fmt.Errorf("activities: command %q registered twice", name)
	}
	r.commands[name] = &command{
		name: name,
		dispatch: func(ctx context.Context, payload []byte, opts *eventstore.DispatchOpts) (*Result, error) {
			cmd, err := decodePayload[C](payload)
			if err != nil {
				return nil, &PayloadError{Command: name, Err: err}
			}
			if opts.CommandID != "" && opts.Fingerprint == nil {
				opts.Fingerprint = fingerprint(name, payload)
			}
			res, err := eventstore.Dispatch(ctx, r.store, h, cmd, opts)
			if err != nil {
				return nil, err
			}
			out := &Result{CommandID: opts.CommandID, Duplicate: res.Duplicate, Revision: res.Revision, Records: make([]RecordRef, len(res.Records))}
			for i, rec := range res.Records {
				out.Stream = rec.Stream
				out.Records[i] = RecordRef{ID: rec.ID.String(), Position: int64(rec.Position), Type: rec.Type, Revision: rec.Revision}
			}
			return out, nil
		},
	}
	return nil
}

// Commands lists the registered command names, sorted.
func (r *Registry) Commands() []string {
	out := make([]string, 0, len(r.commands))
	for n := range r.commands {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DomainErrors returns the registry's domain error names.
func (r *Registry) DomainErrors() *DomainErrors { return r.errors }

// Dispatch runs a registered command directly, outside Temporal, with the
// same decoding and idempotency as the activity: the command id is bound to
// the command's name and payload (see fingerprint), and reused with another
// command it is refused with an *eventstore.CommandIDReusedError. Errors
// are the event store's, or *UnknownCommandError or *PayloadError.
func (r *Registry) Dispatch(ctx context.Context, name, commandID string, payload []byte, metadata eventstore.Metadata) (*Result, error) {
	c, ok := r.commands[name]
	if !ok {
		return nil, &UnknownCommandError{Command: name}
	}
	return c.dispatch(ctx, payload, &eventstore.DispatchOpts{CommandID: commandID, Metadata: metadata})
}

// Result is what a command committed, small enough for workflow history.
type Result struct {
	CommandID string `json:"command_id"`
	// Duplicate: the command id had been dispatched before; nothing was
	// appended and Records are those of the first dispatch.
	Duplicate bool        `json:"duplicate,omitempty"`
	Stream    string      `json:"stream,omitempty"`
	Revision  int64       `json:"revision"`
	Records   []RecordRef `json:"records"`
}

// RecordRef identifies a committed record.
type RecordRef struct {
	ID       string `json:"id"`
	Position int64  `json:"position"`
	Type     string `json:"type"`
	Revision int64  `json:"revision"`
}

// UnknownCommandError: no command of that name is registered.
type UnknownCommandError struct{ Command string }

func (e *UnknownCommandError) Error() string { return fmt.Sprintf("unknown command %q", e.Command) }

// PayloadError: the payload is not valid JSON for the command.
type PayloadError struct {
	Command string
	Err     error
}

func (e *PayloadError) Error() string {
	return fmt.Sprintf("error decoding payload of command %q: %v", e.Command, e.Err)
}
func (e *PayloadError) Unwrap() error { return e.Err }

// fingerprint binds a command id to the command: its name and its JSON
// payload with insignificant white space removed. It hashes the payload as
// sent rather than the decoded command re-encoded, so that a retry after a
// deploy that added a field to the command type still matches: a
// workflow's retries resend the bytes its history recorded. Two clients
// that encode one command with their keys in different orders produce two
// fingerprints; a client retrying its own command does not.
func fingerprint(name string, payload []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, payload); err != nil {
		// decodePayload accepted it, so it is valid JSON; keep the raw
		// bytes should that ever change.
		return eventstore.CommandFingerprint(name, payload)
	}
	return eventstore.CommandFingerprint(name, b.Bytes())
}

func decodePayload[C any](payload []byte) (C, error) {
	var cmd C
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return cmd, errors.New("empty payload")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cmd); err != nil {
		return cmd, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return cmd, errors.New("trailing data after the JSON value")
	}
	return cmd, nil
}

// DomainErrors maps names to domain error values, both ways.
type DomainErrors struct {
	names []string
	errs  map[string]error
}

// NewDomainErrors returns the mapping of named errors.
func NewDomainErrors(named map[string]error) *DomainErrors {
	d := &DomainErrors{errs: map[string]error{}}
	for n, err := range named {
		d.names = append(d.names, n)
		d.errs[n] = err
	}
	sort.Strings(d.names) // deterministic when an error matches two names
	return d
}

// Name returns the name of err: the first registered error it matches with
// errors.Is, or ErrTypeRejected.
func (d *DomainErrors) Name(err error) string {
	if d != nil {
		for _, n := range d.names {
			if errors.Is(err, d.errs[n]) {
				return n
			}
		}
	}
	return ErrTypeRejected
}

// Err returns the error registered under name, or nil.
func (d *DomainErrors) Err(name string) error {
	if d == nil {
		return nil
	}
	return d.errs[name]
}
