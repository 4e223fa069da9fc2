package factosfx

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos"
	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/projections"
	"github.com/factos-go/factos/reactors"
)

// Config is the worker's configuration, read from the environment by
// LoadConfig. Every variable, its default and its meaning are in Vars.
type Config struct {
	DatabaseURL      string
	DatabaseMaxConns int32

	TemporalEnabled   bool
	TemporalAddress   string
	TemporalNamespace string
	TemporalTaskQueue string

	// TemporalTLS: connect to Temporal over TLS. LoadConfig turns it on
	// when TEMPORAL_TLS is unset and an API key or a TLS setting is given.
	TemporalTLS bool
	// The TLS settings, each PEM given as a file or inline (not both); see
	// TemporalClientOptions. Empty CA: the system's roots.
	TemporalTLSServerName string
	TemporalTLSCAPath     string
	TemporalTLSCAData     string
	TemporalTLSCertPath   string
	TemporalTLSCertData   string
	TemporalTLSKeyPath    string
	TemporalTLSKeyData    string
	// TemporalAPIKey is sent as a bearer token with every request
	// (Temporal Cloud API keys). Needs TLS.
	TemporalAPIKey string

	HTTPAddr  string
	LogLevel  slog.Level
	LogFormat string

	ReactionWorkers int
	EffectWorkers   int
	FetchCooldown   time.Duration
	JobTimeout      time.Duration
	RescueAfter     time.Duration
	// DiscardedJobRetention and CancelledJobRetention: how long River
	// keeps discarded and cancelled jobs (failed or cancelled effects and
	// reactions) before its cleaner deletes them.
	DiscardedJobRetention time.Duration
	CancelledJobRetention time.Duration

	// CommandIDRetention: how long the command ledger remembers an id.
	CommandIDRetention time.Duration

	RiverUIEnabled              bool
	RiverUIUsername             string
	RiverUIPassword             string
	RiverUIAllowUnauthenticated bool

	LockStrategy    eventstore.LockStrategy
	ShutdownTimeout time.Duration
	StartupTimeout  time.Duration

	// ReactionBatchSize: reactors.Config.ReactionBatchSize.
	ReactionBatchSize int

	ProjectionBatchSize     int
	ProjectionPollInterval  time.Duration
	ProjectionLeaseInterval time.Duration

	// TracesExporter is OTEL_TRACES_EXPORTER: "none" (tracing off) or
	// "otlp". OTLPProtocol is OTEL_EXPORTER_OTLP_PROTOCOL (or its
	// _TRACES_ form): "http/protobuf" or "grpc". See tracing.go.
	TracesExporter string
	OTLPProtocol   string
}

// Var describes one environment variable of the worker.
type Var struct {
	Name        string `json:"name"`
	Default     string `json:"default,omitempty"`
	Required    bool   `json:"required,omitempty"`
	Secret      bool   `json:"secret,omitempty"`
	Description string `json:"description"`

	set func(c *Config, v string) error
	// form is what a required variable's message suggests when it is
	// unset.
	form string
}

// Vars are the worker's environment variables. `worker spec` prints them,
// and the Helm chart's tests check the chart against that output.
var Vars = []Var{
	{Name: "DATABASE_URL", Required: true, Secret: true,
		Description: "PostgreSQL connection string (postgres://user:pass@host:5432/db).", form: databaseURLForm,
		set: func(c *Config, v string) error {
			isURL := strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://")
			if !isURL && !strings.Contains(v, "=") {
				return invalid("is not a PostgreSQL connection string", databaseURLForm)
			}
			// pgx's own parser decides, so that what passes here also
			// opens a pool; its message can echo the password, so it
			// is not passed on.
			if _, err := pgxpool.ParseConfig(v); err != nil {
				return invalid("cannot be parsed as a PostgreSQL connection string (check the port, the percent-encoding of special characters in the password, and the option names)", databaseURLForm)
			}
			c.DatabaseURL = v
			return nil
		}},
	{Name: "DATABASE_MAX_CONNS", Default: "20", Description: "Maximum connections in the pool.",
		set: func(c *Config, v string) error {
			n, err := positive(v, 1000)
			c.DatabaseMaxConns = int32(n)
			return err
		}},
	{Name: "TEMPORAL_ENABLED", Default: "true", Description: "Run the Temporal worker (dispatch activity and workflows).",
		set: func(c *Config, v string) (err error) { c.TemporalEnabled, err = parseBool(v); return err }},
	{Name: "TEMPORAL_ADDRESS", Default: "127.0.0.1:7233", Description: "Temporal frontend host:port.",
		set: func(c *Config, v string) (err error) {
			c.TemporalAddress, err = hostPort(v, true, "host:port", "temporal-frontend.temporal:7233")
			return err
		}},
	{Name: "TEMPORAL_NAMESPACE", Default: "default", Description: "Temporal namespace.",
		set: func(c *Config, v string) error { c.TemporalNamespace = v; return nonEmpty(v) }},
	{Name: "TEMPORAL_TASK_QUEUE", Default: "factos", Description: "Temporal task queue of the worker's activities and workflows.",
		set: func(c *Config, v string) error { c.TemporalTaskQueue = v; return nonEmpty(v) }},
	{Name: envTemporalTLS, Description: "Connect to Temporal over TLS: true or false. Unset: on when TEMPORAL_API_KEY or any TEMPORAL_TLS_* variable is set, as with the temporal CLI. Temporal Cloud needs it; false with an API key or TLS settings is refused.",
		set: func(c *Config, v string) (err error) { c.TemporalTLS, err = parseBool(v); return err }},
	{Name: envTemporalServerName, Description: "Server name to verify the Temporal server's certificate against, when it differs from TEMPORAL_ADDRESS's host (a private endpoint, say).",
		set: func(c *Config, v string) error {
			c.TemporalTLSServerName = v
			if nonEmpty(v) != nil {
				return invalid("is blank", "a host name the Temporal server's certificate is issued for, such as ns.acct.tmprl.cloud")
			}
			return nil
		}},
	{Name: envTemporalCAPath, Description: "File of PEM CA certificates that sign the Temporal server's certificate. Unset: the system's roots (enough for Temporal Cloud).",
		set: func(c *Config, v string) error { c.TemporalTLSCAPath = v; return nil }},
	{Name: envTemporalCAData, Description: "The same CA certificates as PEM text, instead of a file.",
		set: func(c *Config, v string) error { c.TemporalTLSCAData = v; return nil }},
	{Name: envTemporalCertPath, Description: "File of the PEM client certificate (chain) for mutual TLS; needs the key. Reread at every connection, so a rotated certificate is used without a restart.",
		set: func(c *Config, v string) error { c.TemporalTLSCertPath = v; return nil }},
	{Name: envTemporalCertData, Description: "The client certificate as PEM text, instead of a file.",
		set: func(c *Config, v string) error { c.TemporalTLSCertData = v; return nil }},
	{Name: envTemporalKeyPath, Description: "File of the client certificate's PEM private key.",
		set: func(c *Config, v string) error { c.TemporalTLSKeyPath = v; return nil }},
	{Name: envTemporalKeyData, Secret: true, Description: "The client's private key as PEM text, instead of a file.",
		set: func(c *Config, v string) error { c.TemporalTLSKeyData = v; return nil }},
	{Name: envTemporalAPIKey, Secret: true, Description: "Temporal Cloud API key, sent as a bearer token with every request. Needs TLS (turned on by it unless TEMPORAL_TLS=false, which is refused).",
		set: func(c *Config, v string) error {
			// A key written to a file and read back (kubectl create secret
			// --from-file) often ends in a line break, which gRPC would
			// refuse in a header much later, on the first request.
			c.TemporalAPIKey = strings.TrimSpace(v)
			const valid = "the API key as one word, as Temporal Cloud issued it"
			switch {
			case c.TemporalAPIKey == "":
				return invalid("is blank", valid)
			case strings.ContainsFunc(c.TemporalAPIKey, func(r rune) bool { return r <= ' ' || r == 0x7f }):
				return invalid("has spaces or control characters in it", valid)
			}
			return nil
		}},
	{Name: "HTTP_ADDR", Default: ":8080", Description: "Listen address of /healthz, /readyz, /metrics and /riverui/.",
		set: func(c *Config, v string) (err error) {
			c.HTTPAddr, err = hostPort(v, false, "[host]:port", ":8080 or 127.0.0.1:8080")
			return err
		}},
	{Name: "LOG_LEVEL", Default: "info", Description: oneOf(logLevels) + ".",
		set: func(c *Config, v string) error {
			// slog also reads offsets such as "info+2"; the four names are
			// what anyone needs.
			if c.LogLevel.UnmarshalText([]byte(v)) != nil {
				return invalid("is not a log level", oneOf(logLevels))
			}
			return nil
		}},
	{Name: "LOG_FORMAT", Default: "json", Description: oneOf(logFormats) + ".",
		set: func(c *Config, v string) error {
			if !slices.Contains(logFormats, v) {
				return invalid("is not a log format", oneOf(logFormats))
			}
			c.LogFormat = v
			return nil
		}},
	{Name: "RIVER_REACTION_WORKERS", Default: strconv.Itoa(factos.DefaultReactionWorkers), Description: "Concurrent reaction jobs per queue and process. River fetches at most this many jobs per RIVER_FETCH_COOLDOWN, so workers/cooldown bounds a queue's jobs a second (10 at 10ms: 1,000/s).",
		set: func(c *Config, v string) (err error) { c.ReactionWorkers, err = positive(v, 10_000); return err }},
	{Name: "RIVER_EFFECT_WORKERS", Default: strconv.Itoa(factos.DefaultEffectWorkers), Description: "Concurrent effect jobs per queue and process; effects that wait on other services need more.",
		set: func(c *Config, v string) (err error) { c.EffectWorkers, err = positive(v, 10_000); return err }},
	{Name: "REACTION_BATCH_SIZE", Default: strconv.Itoa(reactors.DefaultReactionBatchSize), Description: "Most reaction jobs one reaction handles in one transaction: while other reactions run (a backlog), a reaction claims up to this many minus one jobs waiting in its queue and commits them with its own. 1: every job alone.",
		set: func(c *Config, v string) (err error) {
			c.ReactionBatchSize, err = positive(v, reactors.MaxReactionBatchSize)
			return err
		}},
	{Name: "RIVER_FETCH_COOLDOWN", Default: "10ms", Description: "Shortest time between two fetches of available jobs per queue. River's own default, 100ms, caps 50 workers at about 500 jobs a second and puts 100ms or more between a commit and its reaction; a fetch is one small query.",
		set: func(c *Config, v string) (err error) {
			if c.FetchCooldown, err = positiveDuration(v); err == nil && c.FetchCooldown < time.Millisecond {
				err = invalid("is shorter than 1ms", "a duration of 1ms or more, such as 10ms")
			}
			return err
		}},
	{Name: "RIVER_JOB_TIMEOUT", Default: "1m", Description: "Default timeout of one River job attempt (effect handlers may set their own).",
		set: func(c *Config, v string) (err error) { c.JobTimeout, err = positiveDuration(v); return err }},
	{Name: "RIVER_RESCUE_AFTER", Default: "1h", Description: "A job still running after this long is presumed lost with its worker (a killed process) and retried. Must exceed every job's timeout.",
		set: func(c *Config, v string) (err error) { c.RescueAfter, err = positiveDuration(v); return err }},
	{Name: "RIVER_DISCARDED_JOB_RETENTION", Default: DefaultDiscardedJobRetention.String(), Description: "How long River keeps a discarded job (an effect or reaction that failed every attempt) before its cleaner deletes it; until then it can be inspected and retried. River's own default is 7 days; the worker's is 30 days, so that a failure noticed after a holiday can still be retried.",
		set: func(c *Config, v string) (err error) { c.DiscardedJobRetention, err = positiveDuration(v); return err }},
	{Name: "RIVER_CANCELLED_JOB_RETENTION", Default: DefaultCancelledJobRetention.String(), Description: "How long River keeps a cancelled job before its cleaner deletes it (River's own default: 7 days).",
		set: func(c *Config, v string) (err error) { c.CancelledJobRetention, err = positiveDuration(v); return err }},
	{Name: "COMMAND_ID_RETENTION", Default: eventstore.DefaultCommandRetention.String(), Description: "How long a command id is remembered (factos_commands); each worker deletes older ids in batches. A command retried, or an id reused, after this long is executed again as a new command: keep it longer than any command can be retried (a Temporal activity's retries, a client's).",
		set: func(c *Config, v string) (err error) {
			if c.CommandIDRetention, err = positiveDuration(v); err == nil && c.CommandIDRetention < time.Hour {
				err = invalid("is shorter than 1h", "a duration of 1h or more, such as 168h (7 days)")
			}
			return err
		}},
	{Name: "RIVERUI_ENABLED", Default: "false", Description: "Serve River UI under /riverui/.",
		set: func(c *Config, v string) (err error) { c.RiverUIEnabled, err = parseBool(v); return err }},
	{Name: "RIVERUI_USERNAME", Secret: true, Description: "River UI basic-auth user (required with RIVERUI_ENABLED unless unauthenticated access is allowed).",
		set: func(c *Config, v string) error { c.RiverUIUsername = v; return nil }},
	{Name: "RIVERUI_PASSWORD", Secret: true, Description: "River UI basic-auth password.",
		set: func(c *Config, v string) error { c.RiverUIPassword = v; return nil }},
	{Name: "RIVERUI_ALLOW_UNAUTHENTICATED", Default: "false", Description: "Serve River UI without credentials (local development only).",
		set: func(c *Config, v string) (err error) {
			c.RiverUIAllowUnauthenticated, err = parseBool(v)
			return err
		}},
	{Name: "LOCK_STRATEGY", Default: string(eventstore.LockKeys), Description: "Event store lock strategy: " + oneOf(lockStrategies()) + ". Every process writing the database must use the one the database records (`worker lock-strategy`); a worker with another refuses to start.",
		set: func(c *Config, v string) (err error) {
			if c.LockStrategy, err = eventstore.ParseLockStrategy(v); err != nil {
				return invalid("is not a lock strategy", oneOf(lockStrategies()))
			}
			return nil
		}},
	{Name: "SHUTDOWN_TIMEOUT", Default: "30s", Description: "How long running jobs and activities may take to finish after SIGTERM.",
		set: func(c *Config, v string) (err error) { c.ShutdownTimeout, err = positiveDuration(v); return err }},
	{Name: "PROJECTION_BATCH_SIZE", Default: strconv.Itoa(projections.DefaultBatchSize), Description: "Events a projection applies in one transaction (projections may set their own).",
		set: func(c *Config, v string) (err error) {
			c.ProjectionBatchSize, err = positive(v, projections.MaxBatchSize)
			return err
		}},
	{Name: "PROJECTION_POLL_INTERVAL", Default: projections.DefaultPollInterval.String(), Description: "How often a process that runs projections checks whether the log or a checkpoint moved (one small query); bounds the delay from a commit to its projections.",
		set: func(c *Config, v string) (err error) {
			c.ProjectionPollInterval, err = atLeastMillisecond(v)
			return err
		}},
	{Name: "PROJECTION_LEASE_INTERVAL", Default: projections.DefaultLeaseInterval.String(), Description: "How often a process tries the projection leases it does not hold; a projection whose process died is taken over within about this long.",
		set: func(c *Config, v string) (err error) {
			c.ProjectionLeaseInterval, err = atLeastMillisecond(v)
			return err
		}},
	{Name: envTracesExporter, Default: "none", Description: "OpenTelemetry trace exporter: none (tracing off: no exporter and a no-op tracer, near-zero cost) or otlp (spans of workflows, activities, dispatches, reactions and effects, in one trace per command, sent over OTLP; the OpenTelemetry SDK reads the other OTEL_* variables). Unlike the OpenTelemetry default, tracing is off unless asked for.",
		set: func(c *Config, v string) error {
			if v != "none" && v != "otlp" {
				return invalid("is not a supported trace exporter", "none or otlp")
			}
			c.TracesExporter = v
			return nil
		}},
	{Name: envOTLPProtocol, Default: "http/protobuf", Description: "OTLP transport when OTEL_TRACES_EXPORTER=otlp: http/protobuf (port 4318) or grpc (port 4317). OTEL_EXPORTER_OTLP_TRACES_PROTOCOL overrides it.",
		set: setOTLPProtocol},
	{Name: envOTLPTracesProtocol, Description: "OTLP transport of traces, overriding OTEL_EXPORTER_OTLP_PROTOCOL.",
		set: setOTLPProtocol},
	{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Description: "OTLP collector base URL, read by the OpenTelemetry SDK (default http://localhost:4318 for http/protobuf, http://localhost:4317 for grpc).",
		set: sdkVar},
	{Name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", Description: "OTLP endpoint of traces (full URL), read by the OpenTelemetry SDK; overrides OTEL_EXPORTER_OTLP_ENDPOINT.",
		set: sdkVar},
	{Name: "OTEL_EXPORTER_OTLP_HEADERS", Secret: true, Description: "Headers of OTLP requests (key=value,...), such as an API key, read by the OpenTelemetry SDK.",
		set: sdkVar},
	{Name: "OTEL_SERVICE_NAME", Default: defaultServiceName, Description: "service.name of the spans, read by the OpenTelemetry SDK.",
		set: sdkVar},
	{Name: "OTEL_RESOURCE_ATTRIBUTES", Description: "Extra resource attributes of the spans (key=value,...), read by the OpenTelemetry SDK.",
		set: sdkVar},
	{Name: "OTEL_TRACES_SAMPLER", Description: "Sampler, read by the OpenTelemetry SDK: always_on, always_off, traceidratio, parentbased_always_on (its default), parentbased_always_off, parentbased_traceidratio.",
		set: sdkVar},
	{Name: "OTEL_TRACES_SAMPLER_ARG", Description: "Sampler argument, read by the OpenTelemetry SDK (the ratio of traceidratio samplers, 0 to 1).",
		set: sdkVar},
	{Name: "STARTUP_TIMEOUT", Default: "5m", Description: "How long `worker run` waits for the database, its migrations and Temporal before it gives up and exits 1 (it reports itself not ready meanwhile); 0 waits forever.",
		set: func(c *Config, v string) (err error) {
			if d, err := time.ParseDuration(v); err == nil && d == 0 {
				c.StartupTimeout = 0 // "0", "0s": wait forever
				return nil
			}
			var iv *invalidValue
			if c.StartupTimeout, err = positiveDuration(v); errors.As(err, &iv) {
				return invalid(iv.reason, "a positive duration such as 5m, or 0 to wait forever")
			}
			return err
		}},
}

// Defaults of the retention variables that differ from River's.
const (
	DefaultDiscardedJobRetention = 30 * 24 * time.Hour
	DefaultCancelledJobRetention = 30 * 24 * time.Hour
)

// The values some variables accept, for their parsers, descriptions and
// messages alike.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"json", "text"}
)

const databaseURLForm = "postgres://user:password@host:5432/database (percent-encode special characters) or key=value pairs such as \"host=db user=app dbname=factos\""

func lockStrategies() []string {
	var out []string
	for _, ls := range eventstore.LockStrategies {
		out = append(out, string(ls))
	}
	return out
}

// ConfigError names the variable that is wrong, what is wrong with its
// value in plain words, and what it accepts:
//
//	invalid configuration: LOG_LEVEL="loud" is not a log level; use debug, info, warn or error
type ConfigError struct {
	// Var is the variable's name.
	Var string
	// Value is the refused value, quoted in the message. It is empty when
	// the variable is unset or secret, or for a rule between variables;
	// long inline PEM is shortened to its beginning and "...".
	Value string
	// Secret is set when the value must not be shown: the variable holds a
	// secret, or this value may (a private key in a certificate's
	// variable). The message says "(value hidden)" instead of quoting it.
	Secret bool
	// Reason says what is wrong, as the rest of a sentence whose subject
	// is the variable: "is not a log level".
	Reason string
	// Valid says what the variable accepts, when a list or a form helps:
	// "debug, info, warn or error". Optional.
	Valid string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration: ")
	b.WriteString(e.Var)
	switch {
	case e.Value != "":
		fmt.Fprintf(&b, "=%q", e.Value)
	case e.Secret:
		b.WriteString(" (value hidden)")
	}
	b.WriteString(" ")
	b.WriteString(e.Reason)
	if e.Valid != "" {
		b.WriteString("; use ")
		b.WriteString(e.Valid)
	}
	return b.String()
}

// invalidValue is what a variable's parser returns for a value it refuses.
type invalidValue struct{ reason, valid string }

func (e *invalidValue) Error() string { return e.reason + "; use " + e.valid }

func invalid(reason, valid string) error { return &invalidValue{reason: reason, valid: valid} }

// LoadConfig reads the configuration from getenv (os.Getenv if nil). It
// reports every invalid or missing variable at once.
func LoadConfig(getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &Config{}
	var errs []error
	for _, v := range Vars {
		val := getenv(v.Name)
		if val == "" {
			if v.Required {
				errs = append(errs, &ConfigError{Var: v.Name, Reason: "is required and not set", Valid: v.form})
				continue
			}
			val = v.Default
		}
		if val == "" {
			continue
		}
		if err := v.set(c, val); err != nil {
			ce := &ConfigError{Var: v.Name, Secret: v.Secret, Reason: err.Error()}
			if !v.Secret {
				ce.Value = val
			}
			var iv *invalidValue
			if errors.As(err, &iv) {
				ce.Reason, ce.Valid = iv.reason, iv.valid
			}
			errs = append(errs, ce)
		}
	}
	switch {
	case c.RiverUIEnabled && !c.RiverUIAllowUnauthenticated && (c.RiverUIUsername == "" || c.RiverUIPassword == ""):
		errs = append(errs, &ConfigError{Var: "RIVERUI_USERNAME",
			Reason: "and RIVERUI_PASSWORD must both be set when RIVERUI_ENABLED=true (or, on a development machine only, RIVERUI_ALLOW_UNAUTHENTICATED=true)"})
	case c.RiverUIEnabled && (c.RiverUIUsername == "") != (c.RiverUIPassword == ""):
		errs = append(errs, &ConfigError{Var: "RIVERUI_USERNAME",
			Reason: "and RIVERUI_PASSWORD must be set together: one without the other is a mistake, even with RIVERUI_ALLOW_UNAUTHENTICATED=true"})
	}
	c.resolveTemporalTLS(getenv(envTemporalTLS) != "")
	if c.TemporalEnabled {
		// Read and check the certificates now, so that a wrong file fails
		// the start with the others, not the first connection much later.
		if _, _, err := c.temporalConnection(slog.New(slog.DiscardHandler)); err != nil {
			errs = append(errs, err)
		}
	}
	if c.RescueAfter != 0 && c.RescueAfter <= c.JobTimeout {
		errs = append(errs, &ConfigError{Var: "RIVER_RESCUE_AFTER", Value: c.RescueAfter.String(),
			Reason: fmt.Sprintf("is not longer than RIVER_JOB_TIMEOUT=%s, so jobs would be rescued (and run twice) while they run", c.JobTimeout),
			Valid:  "a duration longer than RIVER_JOB_TIMEOUT"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// Redacted returns the configuration as printable key/value pairs with
// secrets replaced, for the start-up log line.
func (c *Config) Redacted() []any {
	out := []any{
		"database", redactURL(c.DatabaseURL), "lock_strategy", c.LockStrategy,
		"temporal_enabled", c.TemporalEnabled, "temporal_address", c.TemporalAddress,
		"temporal_namespace", c.TemporalNamespace, "temporal_task_queue", c.TemporalTaskQueue,
		"temporal_tls", c.TemporalTLS, "temporal_client_cert", pemOrigin(c.TemporalTLSCertPath, c.TemporalTLSCertData),
		"temporal_api_key", c.TemporalAPIKey != "",
		"http_addr", c.HTTPAddr, "riverui_enabled", c.RiverUIEnabled,
		"reaction_workers", c.ReactionWorkers, "effect_workers", c.EffectWorkers,
		"discarded_job_retention", c.DiscardedJobRetention.String(), "cancelled_job_retention", c.CancelledJobRetention.String(),
		"command_id_retention", c.CommandIDRetention.String(),
		"shutdown_timeout", c.ShutdownTimeout.String(), "startup_timeout", c.StartupTimeout.String(),
		"traces_exporter", c.TracesExporter,
	}
	return out
}

// redactURL keeps what helps an operator (host, port, database, user) and
// drops the password.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(redacted)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "pass") {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func positive(v string, max int) (int, error) {
	valid := fmt.Sprintf("a whole number from 1 to %d", max)
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		return 0, invalid("is not a whole number", valid)
	case n < 1 || n > max:
		return 0, invalid("is out of range", valid)
	}
	return n, nil
}

func positiveDuration(v string) (time.Duration, error) {
	const valid = "a positive duration with a unit, such as 30s, 5m or 1h30m"
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return 0, invalid("is not a duration", valid)
	case d <= 0:
		return 0, invalid("is not positive", valid)
	}
	return d, nil
}

func atLeastMillisecond(v string) (time.Duration, error) {
	d, err := positiveDuration(v)
	if err == nil && d < time.Millisecond {
		err = invalid("is shorter than 1ms", "a duration of at least 1ms, such as 25ms")
	}
	return d, err
}

// boolValues are the spellings strconv.ParseBool accepts.
const boolValues = "true or false (1, t, T, TRUE, True, 0, f, F, FALSE and False work too)"

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalid("is not a boolean", boolValues)
	}
	return b, nil
}

// hostPort checks a listen or dial address of the given form, such as
// "host:port" (needHost) or "[host]:port".
func hostPort(v string, needHost bool, form, example string) (string, error) {
	valid := form + ", such as " + example
	host, port, err := net.SplitHostPort(v)
	if err != nil || (needHost && host == "") {
		return "", invalid("is not "+form, valid)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", invalid("has no valid port (0 to 65535)", valid)
	}
	return v, nil
}

func nonEmpty(v string) error {
	if strings.TrimSpace(v) == "" {
		return invalid("is blank", "a name")
	}
	return nil
}

// oneOf lists values for a sentence: "a, b or c".
func oneOf(values []string) string { return listed(values, "or") }

// listed lists values for a sentence, the last two joined by conj: "a, b
// and c".
func listed(values []string, conj string) string {
	if len(values) < 2 {
		return strings.Join(values, "")
	}
	return strings.Join(values[:len(values)-1], ", ") + " " + conj + " " + values[len(values)-1]
}

// VarNames lists the variable names, sorted.
func VarNames() []string {
	out := make([]string, len(Vars))
	for i, v := range Vars {
		out[i] = v.Name
	}
	sort.Strings(out)
	return out
}
