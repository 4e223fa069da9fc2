package eventstore

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/factos-go/factos/internal/baseline"
)

func init() {
	// The benchmark measures SERIALIZABLE isolation beside the offered
	// strategies; only packages of this module can reach this door.
	baseline.Serializable = func(cfg any) any {
		c := *cfg.(*Config)
		c.LockStrategy, c.baseline = lockSerializableBaseline, true
		return &c
	}
}

// LockStrategy selects how a dispatch keeps its context stable between the
// read and the append. Both strategies give the same guarantee and pass the
// same concurrency suite; they differ in how much unrelated work they
// serialize. Every process writing to one database must use the same
// strategy: the store records it in the database on first use and refuses
// to run with another (see ErrStrategyMismatch). See docs/consistency.md.
type LockStrategy string

const (
	// LockKeys takes sorted, transaction-scoped advisory locks derived from
	// the context query and from the events written. Unrelated contexts do
	// not wait for each other. The default.
	LockKeys LockStrategy = "keys"

	// LockTable locks the whole event table for every dispatch: every
	// append waits for every other. A baseline.
	LockTable LockStrategy = "table"
)

// LockStrategies are the strategies the store offers, the default first.
// (SERIALIZABLE isolation is not one of them: it does not keep the
// guarantee in position order; docs/consistency.md says why.)
var LockStrategies = []LockStrategy{LockKeys, LockTable}

// ParseLockStrategy parses one of LockStrategies.
func ParseLockStrategy(s string) (LockStrategy, error) {
	for _, ls := range LockStrategies {
		if string(ls) == s {
			return ls, nil
		}
	}
	return "", &UnknownLockStrategyError{Value: s}
}

// UnknownLockStrategyError reports a lock strategy the store does not offer.
type UnknownLockStrategyError struct {
	Value string
}

func (e *UnknownLockStrategyError) Error() string {
	names := make([]string, len(LockStrategies))
	for i, ls := range LockStrategies {
		names[i] = string(ls)
	}
	msg := fmt.Sprintf("unknown lock strategy %q: valid values are %s", e.Value, strings.Join(names, ", "))
	if e.Value == "serializable" {
		msg += " (serializable was removed: it does not keep the guarantee in position order; see docs/consistency.md)"
	}
	return msg
}

// Defaults and limits.
const (
	DefaultMaxAttempts          = 10
	DefaultRetryBaseDelay       = 2 * time.Millisecond
	DefaultRetryMaxDelay        = 250 * time.Millisecond
	DefaultMaxEventsPerDispatch = 100
	DefaultMaxTagsPerEvent      = 32
	DefaultMaxTagBytes          = 256
	DefaultMaxTypeBytes         = 256
	DefaultMaxStreamBytes       = 256
	DefaultMaxDataBytes         = 1 << 20  // 1 MiB
	DefaultMaxMetadataBytes     = 16 << 10 // 16 KiB
	DefaultMaxQueryItems        = 64
	DefaultMaxTypesPerQueryItem = 64
	DefaultMaxCommandIDBytes    = 1024 // a Temporal workflow id (up to 1,000 bytes) and a key
	DefaultReadLimit            = 1000
	DefaultMaxLockKeys          = 64

	// MaxVersion is the largest EventData.Version the store accepts: the
	// version column is a PostgreSQL integer.
	MaxVersion = math.MaxInt32

	// MaxIndexedBytes is the most Limits.MaxTagBytes, MaxTypeBytes,
	// MaxStreamBytes and MaxCommandIDBytes may be raised to: the store
	// indexes those strings (a tag's index entry holds its event's type
	// too), and PostgreSQL bounds a B-tree entry at about 2,700 bytes.
	MaxIndexedBytes = 1024
)

// Limits bound what one dispatch may write. Inputs over a limit are refused
// with an *InvalidInputError before anything is written.
type Limits struct {
	// MaxEventsPerDispatch bounds the events one append writes.
	// Default: DefaultMaxEventsPerDispatch (100).
	MaxEventsPerDispatch int
	// MaxTagsPerEvent bounds the tags of one event. Default: 32.
	MaxTagsPerEvent int
	// MaxTagBytes bounds one tag's length in bytes. Default: 256; at most
	// MaxIndexedBytes.
	MaxTagBytes int
	// MaxTypeBytes bounds an event type's length in bytes. Default: 256;
	// at most MaxIndexedBytes.
	MaxTypeBytes int
	// MaxStreamBytes bounds a stream name's length in bytes. Default:
	// 256; at most MaxIndexedBytes.
	MaxStreamBytes int
	// MaxDataBytes bounds one event's encoded payload. Default: 1 MiB.
	MaxDataBytes int
	// MaxMetadataBytes bounds one event's metadata, measured as the sum of
	// its keys' and values' lengths. Default: 16 KiB.
	MaxMetadataBytes int
	// MaxQueryItems bounds the items of a query. Default: 64.
	MaxQueryItems int
	// MaxTypesPerQueryItem bounds the types of one query item. Default: 64.
	MaxTypesPerQueryItem int
	// MaxCommandIDBytes bounds a command id's length. Default: 1024, so
	// that activities.CommandIDFor fits any Temporal workflow id (up to
	// 1,000 bytes) with a short key; at most MaxIndexedBytes.
	MaxCommandIDBytes int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxEventsPerDispatch, DefaultMaxEventsPerDispatch)
	def(&l.MaxTagsPerEvent, DefaultMaxTagsPerEvent)
	def(&l.MaxTagBytes, DefaultMaxTagBytes)
	def(&l.MaxTypeBytes, DefaultMaxTypeBytes)
	def(&l.MaxStreamBytes, DefaultMaxStreamBytes)
	def(&l.MaxDataBytes, DefaultMaxDataBytes)
	def(&l.MaxMetadataBytes, DefaultMaxMetadataBytes)
	def(&l.MaxQueryItems, DefaultMaxQueryItems)
	def(&l.MaxTypesPerQueryItem, DefaultMaxTypesPerQueryItem)
	def(&l.MaxCommandIDBytes, DefaultMaxCommandIDBytes)
	return l
}

// Config configures a Store. The zero value is usable.
type Config struct {
	// LockStrategy selects the concurrency scheme. All processes writing to
	// one database must use the same strategy; the first store to use a
	// database records its strategy there, and a store configured with
	// another one fails every operation with a *StrategyMismatchError.
	// Default: LockKeys.
	LockStrategy LockStrategy

	// MaxLockKeys bounds the advisory locks one dispatch holds under the
	// keys strategy. Each lock takes a slot in PostgreSQL's shared lock
	// table (max_locks_per_transaction, 64 by default, times
	// max_connections slots for the whole server); a dispatch whose keys
	// would not fit takes coarser ones, which only adds waiting, never
	// unsafety (docs/consistency.md). At least MinLockKeys.
	// Default: DefaultMaxLockKeys (64).
	MaxLockKeys int

	// MaxAttempts bounds how often a dispatch runs when it meets lock
	// contention it cannot wait out, a serialization failure or a deadlock.
	// After the last attempt it returns a *ConflictError.
	// Default: DefaultMaxAttempts (10).
	MaxAttempts int

	// RetryBaseDelay and RetryMaxDelay bound the jittered exponential
	// backoff between attempts. Defaults: 2ms and 250ms.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration

	// Limits bound the input of one dispatch. Zero fields take defaults.
	Limits Limits

	// Hooks run inside every dispatch transaction after the append, in
	// order; an error from any of them rolls the dispatch back. The outbox
	// is a hook. Default: none.
	Hooks []Hook

	// BatchHooks queue their statements in the round trip that appends the
	// events, before the Hooks run. The outbox is one. Default: none.
	BatchHooks []BatchHook

	// Observer, if set, is told about every finished dispatch, for metrics.
	// It must not block. Default: none.
	Observer func(DispatchInfo)

	// TracerProvider gives the tracer of the dispatch spans, which also
	// write the W3C trace context into the appended events' metadata (see
	// MetadataTraceParent). Default: OpenTelemetry's global provider, which
	// does nothing until the application sets one (otel.SetTracerProvider),
	// and then costs one non-recording span per dispatch.
	TracerProvider trace.TracerProvider

	// Logger receives retries and failures at debug level. Default: discard.
	Logger *slog.Logger

	// baseline admits lockSerializableBaseline, for the benchmark only
	// (internal/baseline).
	baseline bool
}

// WithDefaults returns a copy of the config with defaults filled in.
func (c *Config) WithDefaults() *Config {
	out := &Config{}
	if c != nil {
		*out = *c
	}
	if out.LockStrategy == "" {
		out.LockStrategy = LockKeys
	}
	if out.MaxAttempts == 0 {
		out.MaxAttempts = DefaultMaxAttempts
	}
	if out.MaxLockKeys == 0 {
		out.MaxLockKeys = DefaultMaxLockKeys
	}
	if out.RetryBaseDelay == 0 {
		out.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if out.RetryMaxDelay == 0 {
		out.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	out.Limits = out.Limits.withDefaults()
	return out
}

func (c *Config) validate() error {
	var errs []error
	if _, err := ParseLockStrategy(string(c.LockStrategy)); err != nil && !(c.baseline && c.LockStrategy == lockSerializableBaseline) {
		errs = append(errs, fmt.Errorf("field LockStrategy: %w", err))
	}
	if c.MaxLockKeys < MinLockKeys {
		errs = append(errs, fmt.Errorf("field MaxLockKeys must be at least %d, got %d", MinLockKeys, c.MaxLockKeys))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("field MaxAttempts must be at least 1, got %d", c.MaxAttempts))
	}
	if c.RetryBaseDelay < 0 || c.RetryMaxDelay < c.RetryBaseDelay {
		errs = append(errs, fmt.Errorf("field RetryBaseDelay (%s) must be >= 0 and <= RetryMaxDelay (%s)", c.RetryBaseDelay, c.RetryMaxDelay))
	}
	l := c.Limits
	for name, v := range map[string]int{
		"MaxEventsPerDispatch": l.MaxEventsPerDispatch, "MaxTagsPerEvent": l.MaxTagsPerEvent,
		"MaxTagBytes": l.MaxTagBytes, "MaxTypeBytes": l.MaxTypeBytes, "MaxStreamBytes": l.MaxStreamBytes,
		"MaxDataBytes": l.MaxDataBytes, "MaxMetadataBytes": l.MaxMetadataBytes,
		"MaxQueryItems": l.MaxQueryItems, "MaxTypesPerQueryItem": l.MaxTypesPerQueryItem, "MaxCommandIDBytes": l.MaxCommandIDBytes,
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("field Limits.%s must not be negative, got %d", name, v))
		}
	}
	for name, v := range map[string]int{
		"MaxTagBytes": l.MaxTagBytes, "MaxTypeBytes": l.MaxTypeBytes, "MaxStreamBytes": l.MaxStreamBytes, "MaxCommandIDBytes": l.MaxCommandIDBytes,
	} {
		if v > MaxIndexedBytes {
			errs = append(errs, fmt.Errorf("field Limits.%s must be at most %d (MaxIndexedBytes: the store indexes these strings, and PostgreSQL bounds an index entry), got %d", name, MaxIndexedBytes, v))
		}
	}
	for i, h := range c.Hooks {
		if h == nil {
			errs = append(errs, fmt.Errorf("field Hooks[%d] is nil", i))
		}
	}
	for i, h := range c.BatchHooks {
		if h == nil {
			errs = append(errs, fmt.Errorf("field BatchHooks[%d] is nil", i))
		}
	}
	return errors.Join(errs...)
}
