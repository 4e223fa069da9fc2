package projections

import (
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"os"
	"time"
)

// Defaults and limits of Config.
const (
	// DefaultBatchSize is how many events a runner applies in one
	// transaction.
	DefaultBatchSize = 500
	// MaxBatchSize bounds every batch size.
	MaxBatchSize = 10_000
	// DefaultPollInterval is how often a process's watcher asks the
	// database whether the log or a checkpoint row moved.
	DefaultPollInterval = 25 * time.Millisecond
	// DefaultLeaseInterval is how often a process tries to take the leases
	// it does not hold, gives up those beyond its share, and checks its
	// lease connection.
	DefaultLeaseInterval = 2 * time.Second
	// DefaultRetryMin and DefaultRetryMax bound the backoff between
	// attempts of a failing apply.
	DefaultRetryMin = time.Second
	DefaultRetryMax = time.Minute
	// DefaultWaitTimeout bounds WaitFor when its context has no deadline.
	DefaultWaitTimeout = 10 * time.Second
	// DefaultWaitPollInterval is how often WaitFor reads the checkpoint of
	// a projection that runs in another process.
	DefaultWaitPollInterval = 20 * time.Millisecond
	// DefaultIdleRecheck is how long an idle runner waits without a wake-up
	// before it reads the log anyway.
	DefaultIdleRecheck = 5 * time.Second
)

// Config configures a Client. The zero value is usable.
type Config struct {
	// BatchSize bounds the events applied in one transaction, for
	// projections that do not set their own. Larger batches catch up
	// faster and hold their transaction longer. Default: DefaultBatchSize
	// (500).
	BatchSize int

	// PollInterval is how often the process's one watcher reads the
	// position sequence and the checkpoint rows' generations (one small
	// query) to wake its runners, while any runs. It bounds the delay
	// between a commit and its runner's next read. Default:
	// DefaultPollInterval (25ms).
	PollInterval time.Duration

	// LeaseInterval is how often the process tries the leases it does not
	// hold. A lease whose holder died is taken over within about this
	// long. Default: DefaultLeaseInterval (2s).
	LeaseInterval time.Duration

	// RetryMin and RetryMax bound the exponential backoff between failed
	// attempts at one batch. Defaults: DefaultRetryMin (1s) and
	// DefaultRetryMax (1m).
	RetryMin time.Duration
	RetryMax time.Duration

	// WaitTimeout bounds WaitFor when its context has no deadline.
	// Default: DefaultWaitTimeout (10s).
	WaitTimeout time.Duration

	// WaitPollInterval is how often WaitFor reads the checkpoint of a
	// projection that runs in another process (one query per projection
	// however many wait). Default: DefaultWaitPollInterval (20ms).
	WaitPollInterval time.Duration

	// IdleRecheck is how long an idle runner waits for a wake-up before it
	// reads the log anyway. Default: DefaultIdleRecheck (5s).
	IdleRecheck time.Duration

	// Owner names this process in the checkpoint rows of the projections
	// it runs, for `status`. Default: hostname:pid.
	Owner string

	// Metrics records checkpoints, lag, batches and errors. Default: none.
	Metrics *Metrics

	// TracerProvider gives the tracer of the batch spans: one span per
	// applied batch, linked to the traces of the events it applies (their
	// metadata's trace context). Linked, not parented: a batch applies
	// the events of many commands. Default: OpenTelemetry's global
	// provider, which does nothing until the application sets one.
	TracerProvider trace.TracerProvider

	// Logger. Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns a copy of c (or of the zero Config) with every
// unset field at its default.
func (c *Config) WithDefaults() *Config {
	out := &Config{}
	if c != nil {
		*out = *c
	}
	setDefault(&out.BatchSize, DefaultBatchSize)
	setDefault(&out.PollInterval, DefaultPollInterval)
	setDefault(&out.LeaseInterval, DefaultLeaseInterval)
	setDefault(&out.RetryMin, DefaultRetryMin)
	setDefault(&out.RetryMax, DefaultRetryMax)
	setDefault(&out.WaitTimeout, DefaultWaitTimeout)
	setDefault(&out.WaitPollInterval, DefaultWaitPollInterval)
	setDefault(&out.IdleRecheck, DefaultIdleRecheck)
	if out.Owner == "" {
		host, _ := os.Hostname()
		out.Owner = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}

// validate reports every invalid field at once.
func (c *Config) validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > MaxBatchSize {
		errs = append(errs, fmt.Errorf("field BatchSize must be 1 to %d, got %d", MaxBatchSize, c.BatchSize))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"PollInterval", c.PollInterval}, {"LeaseInterval", c.LeaseInterval}, {"RetryMin", c.RetryMin},
		{"RetryMax", c.RetryMax}, {"WaitTimeout", c.WaitTimeout}, {"WaitPollInterval", c.WaitPollInterval},
		{"IdleRecheck", c.IdleRecheck},
	} {
		if f.d < time.Millisecond {
			errs = append(errs, fmt.Errorf("field %s must be at least 1ms, got %s", f.name, f.d))
		}
	}
	if c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("field RetryMax (%s) must not be below RetryMin (%s)", c.RetryMax, c.RetryMin))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("projections: %w: %w", ErrInvalidConfig, errors.Join(errs...))
}
