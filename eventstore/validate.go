package eventstore

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// checkName validates a type, tag, stream or command id: non-empty, within
// max bytes, valid UTF-8 and free of control characters. Control characters
// are refused because they are invisible in logs and UIs, because PostgreSQL
// text cannot hold NUL, and because the store uses U+001F to separate tags
// on the wire.
func checkName(field, s string, max int) error {
	if s == "" {
		return &InvalidInputError{Field: field, Reason: "empty"}
	}
	if len(s) > max {
		return &InvalidInputError{Field: field, Reason: fmt.Sprintf("too long (%d bytes, limit %d)", len(s), max)}
	}
	if !utf8.ValidString(s) {
		return &InvalidInputError{Field: field, Reason: "not valid UTF-8"}
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return &InvalidInputError{Field: field, Reason: fmt.Sprintf("contains control character %U", r)}
		}
	}
	return nil
}

func (l Limits) checkStream(stream string) error {
	return checkName("stream", stream, l.MaxStreamBytes)
}

func (l Limits) checkCommandID(id string) error {
	if id == "" {
		return nil
	}
	return checkName("command id", id, l.MaxCommandIDBytes)
}

// MaxFingerprintBytes is the longest command fingerprint the store takes
// (a SHA-512 digest's length).
const MaxFingerprintBytes = 64

func checkFingerprint(commandID string, fp []byte) error {
	switch {
	case fp == nil:
		return nil
	case commandID == "":
		return &InvalidInputError{Field: "fingerprint", Reason: "set without a command id"}
	case len(fp) == 0:
		return &InvalidInputError{Field: "fingerprint", Reason: "empty (leave it nil for none)"}
	case len(fp) > MaxFingerprintBytes:
		return &InvalidInputError{Field: "fingerprint", Reason: fmt.Sprintf("too long (%d bytes, limit %d)", len(fp), MaxFingerprintBytes)}
	}
	return nil
}

// checkEvents validates a batch of events to append. It fills in missing
// ids, so it runs once per append, before the transaction starts.
func (l Limits) checkEvents(events []EventData) error {
	if len(events) > l.MaxEventsPerDispatch {
		return &InvalidInputError{Field: "events", Reason: fmt.Sprintf("too many (%d, limit %d)", len(events), l.MaxEventsPerDispatch)}
	}
	seen := make(map[uuid.UUID]int, len(events))
	for i := range events {
		ev := &events[i]
		at := fmt.Sprintf("events[%d]", i)
		if ev.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return &StoreError{Op: "generating event id", Err: err}
			}
			ev.ID = id
		}
		if j, dup := seen[ev.ID]; dup {
			return &InvalidInputError{Field: at + ".id", Reason: fmt.Sprintf("duplicate of events[%d].id %s", j, ev.ID)}
		}
		seen[ev.ID] = i
		if err := checkName(at+".type", ev.Type, l.MaxTypeBytes); err != nil {
			return err
		}
		if ev.Version < 0 {
			return &InvalidInputError{Field: at + ".version", Reason: "negative"}
		}
		// The column is an int4: a larger version would be stored as a
		// different number, so it is refused rather than truncated.
		if ev.Version > MaxVersion {
			return &InvalidInputError{Field: at + ".version", Reason: fmt.Sprintf("too large (%d, limit %d)", ev.Version, MaxVersion)}
		}
		if err := l.checkTags(at+".tags", ev.Tags, true); err != nil {
			return err
		}
		if len(ev.Data) > l.MaxDataBytes {
			return &InvalidInputError{Field: at + ".data", Reason: fmt.Sprintf("too large (%d bytes, limit %d)", len(ev.Data), l.MaxDataBytes)}
		}
		if err := l.checkMetadata(at+".metadata", ev.Metadata); err != nil {
			return err
		}
	}
	return nil
}

func (l Limits) checkTags(field string, tags []string, unique bool) error {
	if len(tags) > l.MaxTagsPerEvent {
		return &InvalidInputError{Field: field, Reason: fmt.Sprintf("too many (%d, limit %d)", len(tags), l.MaxTagsPerEvent)}
	}
	for i, t := range tags {
		if err := checkName(fmt.Sprintf("%s[%d]", field, i), t, l.MaxTagBytes); err != nil {
			return err
		}
		if unique {
			for j := range i {
				if tags[j] == t {
					return &InvalidInputError{Field: fmt.Sprintf("%s[%d]", field, i), Reason: fmt.Sprintf("duplicate of %s[%d] %q", field, j, t)}
				}
			}
		}
	}
	return nil
}

// checkMetadata refuses NUL (jsonb cannot store it) and invalid UTF-8
// (encoding/json would silently replace it, so the value would not round
// trip); other control characters are escaped faithfully by JSON.
func (l Limits) checkMetadata(field string, md Metadata) error {
	size := 0
	for k, v := range md {
		size += len(k) + len(v)
		for _, s := range [2]string{k, v} {
			if !utf8.ValidString(s) {
				return &InvalidInputError{Field: fmt.Sprintf("%s[%q]", field, k), Reason: "not valid UTF-8"}
			}
			for i := 0; i < len(s); i++ {
				if s[i] == 0 {
					return &InvalidInputError{Field: fmt.Sprintf("%s[%q]", field, k), Reason: "contains NUL"}
				}
			}
		}
		if k == "" {
			return &InvalidInputError{Field: field, Reason: "empty key"}
		}
	}
	if size > l.MaxMetadataBytes {
		return &InvalidInputError{Field: field, Reason: fmt.Sprintf("too large (%d bytes, limit %d)", size, l.MaxMetadataBytes)}
	}
	return nil
}

// emptyQueryReason explains how to say what an empty query might have
// meant. An empty query matches nothing, so a decision guarded by it could
// never be invalidated: more likely a bug than an intent, hence refused.
const emptyQueryReason = "empty: it matches no event, so nothing could ever conflict with the decision. " +
	"Use AllEvents() to depend on every event; for a decision that depends on no event, " +
	"dispatch by stream revision (Handler.Query nil) or Append without a Condition"

// checkQuery validates a query. An empty query is refused where a context is
// required (a dispatch must name what its decision depends on).
func (l Limits) checkQuery(field string, q Query) error {
	if q.All {
		return nil
	}
	if len(q.Items) == 0 {
		return &InvalidInputError{Field: field, Reason: emptyQueryReason}
	}
	if len(q.Items) > l.MaxQueryItems {
		return &InvalidInputError{Field: field, Reason: fmt.Sprintf("too many items (%d, limit %d)", len(q.Items), l.MaxQueryItems)}
	}
	for i, it := range q.Items {
		at := fmt.Sprintf("%s.items[%d]", field, i)
		if len(it.Types) > l.MaxTypesPerQueryItem {
			return &InvalidInputError{Field: at + ".types", Reason: fmt.Sprintf("too many (%d, limit %d)", len(it.Types), l.MaxTypesPerQueryItem)}
		}
		for j, typ := range it.Types {
			if err := checkName(fmt.Sprintf("%s.types[%d]", at, j), typ, l.MaxTypeBytes); err != nil {
				return err
			}
		}
		if err := l.checkTags(at+".tags", it.Tags, false); err != nil {
			return err
		}
	}
	return nil
}
