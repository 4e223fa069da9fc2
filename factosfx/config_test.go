package factosfx_test

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/factosfx"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := factosfx.LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://u:p@db:5432/factos"}))
	if err != nil {
		t.Fatal(err)
	}
	want := factosfx.Config{
		DatabaseURL: "postgres://u:p@db:5432/factos", DatabaseMaxConns: 20,
		TemporalEnabled: true, TemporalAddress: "127.0.0.1:7233", TemporalNamespace: "default", TemporalTaskQueue: "factos",
		HTTPAddr: ":8080", LogLevel: slog.LevelInfo, LogFormat: "json", ReactionWorkers: 50, EffectWorkers: 50, ReactionBatchSize: 100,
		FetchCooldown: 10 * time.Millisecond, JobTimeout: time.Minute, RescueAfter: time.Hour,
		DiscardedJobRetention: 30 * 24 * time.Hour, CancelledJobRetention: 30 * 24 * time.Hour, CommandIDRetention: 7 * 24 * time.Hour,
		LockStrategy: eventstore.LockKeys, ShutdownTimeout: 30 * time.Second, StartupTimeout: 5 * time.Minute,
		ProjectionBatchSize: 500, ProjectionPollInterval: 25 * time.Millisecond, ProjectionLeaseInterval: 2 * time.Second,
		TracesExporter: "none", OTLPProtocol: "http/protobuf",
	}
	if *cfg != want {
		t.Fatalf("defaults:\n got %+v\nwant %+v", *cfg, want)
	}
}

func TestBadConfigNamesTheVariable(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://u:hunter2@db/factos"}
	for _, tc := range []struct {
		set  map[string]string
		name string
	}{
		{map[string]string{"DATABASE_URL": ""}, "DATABASE_URL"},
		{map[string]string{"DATABASE_URL": "mysql://x"}, "DATABASE_URL"},
		{map[string]string{"DATABASE_MAX_CONNS": "0"}, "DATABASE_MAX_CONNS"},
		{map[string]string{"TEMPORAL_ENABLED": "maybe"}, "TEMPORAL_ENABLED"},
		{map[string]string{"TEMPORAL_ADDRESS": "nohostport"}, "TEMPORAL_ADDRESS"},
		{map[string]string{"TEMPORAL_TASK_QUEUE": " "}, "TEMPORAL_TASK_QUEUE"},
		{map[string]string{"HTTP_ADDR": "8080"}, "HTTP_ADDR"},
		{map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT"},
		{map[string]string{"RIVER_EFFECT_WORKERS": "-1"}, "RIVER_EFFECT_WORKERS"},
		{map[string]string{"LOCK_STRATEGY": "global"}, "LOCK_STRATEGY"},
		{map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, "SHUTDOWN_TIMEOUT"},
		{map[string]string{"STARTUP_TIMEOUT": "-1s"}, "STARTUP_TIMEOUT"},
		{map[string]string{"DATABASE_URL": "postgres://u:hunter2@db:notaport/factos"}, "DATABASE_URL"},
		{map[string]string{"RIVER_JOB_TIMEOUT": "0s"}, "RIVER_JOB_TIMEOUT"},
		{map[string]string{"RIVER_FETCH_COOLDOWN": "500us"}, "RIVER_FETCH_COOLDOWN"},
		{map[string]string{"RIVER_FETCH_COOLDOWN": "fast"}, "RIVER_FETCH_COOLDOWN"},
		{map[string]string{"RIVER_JOB_TIMEOUT": "2m", "RIVER_RESCUE_AFTER": "1m"}, "RIVER_RESCUE_AFTER"},
		{map[string]string{"RIVERUI_ENABLED": "true"}, "RIVERUI_USERNAME"},
		{map[string]string{"RIVERUI_ENABLED": "true", "RIVERUI_USERNAME": "admin"}, "RIVERUI_USERNAME"},
		{map[string]string{"REACTION_BATCH_SIZE": "0"}, "REACTION_BATCH_SIZE"},
		{map[string]string{"REACTION_BATCH_SIZE": "1001"}, "REACTION_BATCH_SIZE"},
		{map[string]string{"PROJECTION_BATCH_SIZE": "0"}, "PROJECTION_BATCH_SIZE"},
		{map[string]string{"PROJECTION_BATCH_SIZE": "20000"}, "PROJECTION_BATCH_SIZE"},
		{map[string]string{"PROJECTION_POLL_INTERVAL": "100us"}, "PROJECTION_POLL_INTERVAL"},
		{map[string]string{"PROJECTION_LEASE_INTERVAL": "never"}, "PROJECTION_LEASE_INTERVAL"},
		{map[string]string{"RIVER_DISCARDED_JOB_RETENTION": "0s"}, "RIVER_DISCARDED_JOB_RETENTION"},
		{map[string]string{"RIVER_CANCELLED_JOB_RETENTION": "7d"}, "RIVER_CANCELLED_JOB_RETENTION"},
		{map[string]string{"COMMAND_ID_RETENTION": "30m"}, "COMMAND_ID_RETENTION"},
		{map[string]string{"COMMAND_ID_RETENTION": "forever"}, "COMMAND_ID_RETENTION"},
	} {
		vars := map[string]string{}
		for k, v := range base {
			vars[k] = v
		}
		for k, v := range tc.set {
			vars[k] = v
		}
		_, err := factosfx.LoadConfig(env(vars))
		var ce *factosfx.ConfigError
		if !errors.As(err, &ce) || ce.Var != tc.name {
			t.Errorf("%v: err = %v, want a ConfigError naming %s", tc.set, err, tc.name)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%v: the error leaks the database password: %v", tc.set, err)
		}
	}

	// Every problem at once.
	_, err := factosfx.LoadConfig(env(map[string]string{"LOG_LEVEL": "loud", "HTTP_ADDR": "x"}))
	for _, name := range []string{"DATABASE_URL", "LOG_LEVEL", "HTTP_ADDR"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("err = %v, want it to name %s", err, name)
		}
	}
}

// Each message names the variable, says what is wrong with the value in
// plain words, and lists what is accepted.
func TestConfigErrorMessages(t *testing.T) {
	t.Parallel()
	var strategies []string
	for _, ls := range eventstore.LockStrategies {
		strategies = append(strategies, string(ls))
	}
	for _, tc := range []struct {
		name, value string
		want        string
	}{
		{"RIVERUI_ENABLED", "yes", `invalid configuration: RIVERUI_ENABLED="yes" is not a boolean; use true or false (1, t, T, TRUE, True, 0, f, F, FALSE and False work too)`},
		{"TEMPORAL_ENABLED", "on", `invalid configuration: TEMPORAL_ENABLED="on" is not a boolean; use true or false (1, t, T, TRUE, True, 0, f, F, FALSE and False work too)`},
		{"LOG_LEVEL", "loud", `invalid configuration: LOG_LEVEL="loud" is not a log level; use debug, info, warn or error`},
		{"LOG_FORMAT", "xml", `invalid configuration: LOG_FORMAT="xml" is not a log format; use json or text`},
		{"LOCK_STRATEGY", "foo", `invalid configuration: LOCK_STRATEGY="foo" is not a lock strategy; use ` + strings.Join(strategies[:len(strategies)-1], ", ") + " or " + strategies[len(strategies)-1]},
		{"DATABASE_MAX_CONNS", "many", `invalid configuration: DATABASE_MAX_CONNS="many" is not a whole number; use a whole number from 1 to 1000`},
		{"DATABASE_MAX_CONNS", "0", `invalid configuration: DATABASE_MAX_CONNS="0" is out of range; use a whole number from 1 to 1000`},
		{"SHUTDOWN_TIMEOUT", "30", `invalid configuration: SHUTDOWN_TIMEOUT="30" is not a duration; use a positive duration with a unit, such as 30s, 5m or 1h30m`},
		{"RIVER_JOB_TIMEOUT", "-1m", `invalid configuration: RIVER_JOB_TIMEOUT="-1m" is not positive; use a positive duration with a unit, such as 30s, 5m or 1h30m`},
		{"RIVER_FETCH_COOLDOWN", "500us", `invalid configuration: RIVER_FETCH_COOLDOWN="500us" is shorter than 1ms; use a duration of 1ms or more, such as 10ms`},
		{"TEMPORAL_ADDRESS", "temporal", `invalid configuration: TEMPORAL_ADDRESS="temporal" is not host:port; use host:port, such as temporal-frontend.temporal:7233`},
		{"TEMPORAL_ADDRESS", ":7233", `invalid configuration: TEMPORAL_ADDRESS=":7233" is not host:port; use host:port, such as temporal-frontend.temporal:7233`},
		{"HTTP_ADDR", "8080", `invalid configuration: HTTP_ADDR="8080" is not [host]:port; use [host]:port, such as :8080 or 127.0.0.1:8080`},
		{"HTTP_ADDR", ":http-alt", `invalid configuration: HTTP_ADDR=":http-alt" has no valid port (0 to 65535); use [host]:port, such as :8080 or 127.0.0.1:8080`},
		{"TEMPORAL_TASK_QUEUE", " ", `invalid configuration: TEMPORAL_TASK_QUEUE=" " is blank; use a name`},
		{"DATABASE_URL", "", `invalid configuration: DATABASE_URL is required and not set; use postgres://user:password@host:5432/database (percent-encode special characters) or key=value pairs such as "host=db user=app dbname=factos"`},
		{"DATABASE_URL", "mysql://root:hunter2@db/x", `invalid configuration: DATABASE_URL (value hidden) is not a PostgreSQL connection string; use postgres://user:password@host:5432/database (percent-encode special characters) or key=value pairs such as "host=db user=app dbname=factos"`},
		{"DATABASE_URL", "postgres://u:hunter2@db:port/x", `invalid configuration: DATABASE_URL (value hidden) cannot be parsed as a PostgreSQL connection string (check the port, the percent-encoding of special characters in the password, and the option names); use postgres://user:password@host:5432/database (percent-encode special characters) or key=value pairs such as "host=db user=app dbname=factos"`},
		{"TEMPORAL_TLS", "yes", `invalid configuration: TEMPORAL_TLS="yes" is not a boolean; use true or false (1, t, T, TRUE, True, 0, f, F, FALSE and False work too)`},
		{"TEMPORAL_API_KEY", "tcak hunter2", `invalid configuration: TEMPORAL_API_KEY (value hidden) has spaces or control characters in it; use the API key as one word, as Temporal Cloud issued it`},
		{"TEMPORAL_TLS_SERVER_NAME", " ", `invalid configuration: TEMPORAL_TLS_SERVER_NAME=" " is blank; use a host name the Temporal server's certificate is issued for, such as ns.acct.tmprl.cloud`},
		{"TEMPORAL_TLS_SERVER_CA_CERT_PATH", "/nonexistent/ca.pem", `invalid configuration: TEMPORAL_TLS_SERVER_CA_CERT_PATH="/nonexistent/ca.pem" cannot be read: no such file or directory; use the path of a readable PEM file holding the CA certificates that sign the Temporal server's certificate`},
		{"TEMPORAL_TLS_SERVER_CA_CERT_DATA", "yes", `invalid configuration: TEMPORAL_TLS_SERVER_CA_CERT_DATA="yes" holds no complete PEM block (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----); use the CA certificates that sign the Temporal server's certificate as PEM text`},
		{"TEMPORAL_TLS_CLIENT_CERT_PATH", "/etc/factos/tls.crt", `invalid configuration: TEMPORAL_TLS_CLIENT_CERT_PATH="/etc/factos/tls.crt" is set, but the client certificate's private key is not; use it together with TEMPORAL_TLS_CLIENT_KEY_PATH or TEMPORAL_TLS_CLIENT_KEY_DATA (mutual TLS needs both)`},
		{"TEMPORAL_TLS_CLIENT_KEY_DATA", "hunter2", `invalid configuration: TEMPORAL_TLS_CLIENT_KEY_DATA (value hidden) is set, but the client certificate is not; use it together with TEMPORAL_TLS_CLIENT_CERT_PATH or TEMPORAL_TLS_CLIENT_CERT_DATA (mutual TLS needs both)`},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{"DATABASE_URL": "postgres://u:p@db/factos", tc.name: tc.value}
			_, err := factosfx.LoadConfig(env(vars))
			if err == nil || err.Error() != tc.want {
				t.Errorf("\n got %v\nwant %s", err, tc.want)
			}
		})
	}

	// Rules between variables say which ones and why.
	for _, tc := range []struct {
		set  map[string]string
		want string
	}{
		{map[string]string{"RIVERUI_ENABLED": "true", "RIVERUI_PASSWORD": "x"},
			"invalid configuration: RIVERUI_USERNAME and RIVERUI_PASSWORD must both be set when RIVERUI_ENABLED=true (or, on a development machine only, RIVERUI_ALLOW_UNAUTHENTICATED=true)"},
		{map[string]string{"RIVERUI_ENABLED": "true", "RIVERUI_ALLOW_UNAUTHENTICATED": "true", "RIVERUI_USERNAME": "admin"},
			"invalid configuration: RIVERUI_USERNAME and RIVERUI_PASSWORD must be set together: one without the other is a mistake, even with RIVERUI_ALLOW_UNAUTHENTICATED=true"},
		{map[string]string{"RIVER_JOB_TIMEOUT": "2m", "RIVER_RESCUE_AFTER": "1m"},
			`invalid configuration: RIVER_RESCUE_AFTER="1m0s" is not longer than RIVER_JOB_TIMEOUT=2m0s, so jobs would be rescued (and run twice) while they run; use a duration longer than RIVER_JOB_TIMEOUT`},
		{map[string]string{"TEMPORAL_TLS": "false", "TEMPORAL_TLS_SERVER_NAME": "ns.acct.tmprl.cloud"},
			"invalid configuration: TEMPORAL_TLS is false, but TEMPORAL_TLS_SERVER_NAME is a TLS setting; use true, or leave it unset (TLS then turns on by itself), or remove TEMPORAL_TLS_SERVER_NAME"},
		{map[string]string{"TEMPORAL_TLS": "false", "TEMPORAL_API_KEY": "hunter2"},
			"invalid configuration: TEMPORAL_API_KEY (value hidden) needs TLS, but TEMPORAL_TLS is false: the key would travel in plain text in every request's headers (and Temporal Cloud accepts TLS connections only); use it with TEMPORAL_TLS=true or with TEMPORAL_TLS unset"},
		{map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/etc/factos/ca.pem", "TEMPORAL_TLS_SERVER_CA_CERT_DATA": "-----BEGIN CERTIFICATE-----"},
			"invalid configuration: TEMPORAL_TLS_SERVER_CA_CERT_PATH and TEMPORAL_TLS_SERVER_CA_CERT_DATA are both set; use one or the other: the server CA certificates as a file or as PEM text"},
	} {
		tc.set["DATABASE_URL"] = "postgres://u:p@db/factos"
		if _, err := factosfx.LoadConfig(env(tc.set)); err == nil || err.Error() != tc.want {
			t.Errorf("%v:\n got %v\nwant %s", tc.set, err, tc.want)
		}
	}
}

// Every variable that refuses a value explains itself the same way,
// including variables added later: a parser's own message ("strconv.
// ParseBool: parsing ...") never reaches the operator.
func TestEveryVariableExplainsABadValue(t *testing.T) {
	t.Parallel()
	checked := 0
	for _, v := range factosfx.Vars {
		for _, bad := range []string{"yes please", " ", "-1", "soon", "0x"} {
			vars := map[string]string{"DATABASE_URL": "postgres://u:p@db/factos", v.Name: bad}
			_, err := factosfx.LoadConfig(env(vars))
			var ce *factosfx.ConfigError
			if !errors.As(err, &ce) || ce.Var != v.Name {
				continue
			}
			checked++
			msg := err.Error()
			if ce.Reason == "" || ce.Valid == "" {
				t.Errorf("%s=%q: %q says what is wrong (%q) or what is accepted (%q) not at all", v.Name, bad, msg, ce.Reason, ce.Valid)
			}
			for _, internal := range []string{"strconv", "slog:", "time:", "invalid syntax", "unknown name"} {
				if strings.Contains(msg, internal) {
					t.Errorf("%s=%q: %q passes on a parser's message", v.Name, bad, msg)
				}
			}
			if quoted := strconv.Quote(bad); v.Secret == strings.Contains(msg, quoted) || strings.Count(msg, quoted) > 1 {
				t.Errorf("%s=%q: %q should quote the value once (hidden if secret: %v)", v.Name, bad, msg, v.Secret)
			}
			switch {
			case isBool(v.Default):
				if !strings.Contains(msg, "true or false") {
					t.Errorf("%s=%q: %q does not list the booleans", v.Name, bad, msg)
				}
			case isDuration(v.Default):
				if !strings.Contains(msg, "duration") {
					t.Errorf("%s=%q: %q does not ask for a duration", v.Name, bad, msg)
				}
			}
		}
	}
	if checked < 30 {
		t.Errorf("only %d refusals checked", checked)
	}
}

func isBool(s string) bool { _, err := strconv.ParseBool(s); return err == nil }

func isDuration(s string) bool {
	_, err := time.ParseDuration(s)
	return err == nil && strings.ContainsAny(s, "hms")
}

func TestStartupTimeoutZeroWaitsForever(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"0", "0s"} {
		cfg, err := factosfx.LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://u:p@db/factos", "STARTUP_TIMEOUT": v}))
		if err != nil || cfg.StartupTimeout != 0 {
			t.Fatalf("STARTUP_TIMEOUT=%s: %v %v", v, cfg, err)
		}
	}
}

func TestRedactedConfigHidesSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := factosfx.LoadConfig(env(map[string]string{
		"DATABASE_URL":    "postgres://app:hunter2@db:5432/factos?sslmode=require&password=hunter3",
		"RIVERUI_ENABLED": "true", "RIVERUI_USERNAME": "admin", "RIVERUI_PASSWORD": "s3cret-ui",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("start", cfg.Redacted()...)
	for _, secret := range []string{"hunter2", "hunter3", "s3cret-ui"} {
		if strings.Contains(b.String(), secret) {
			t.Errorf("log line leaks %q: %s", secret, b.String())
		}
	}
	if !strings.Contains(b.String(), "db:5432") {
		t.Errorf("log line lost the host: %s", b.String())
	}
}

func TestSpecListsEveryVariable(t *testing.T) {
	t.Parallel()
	spec := factosfx.WorkerSpec()
	if len(spec.Env) != len(factosfx.VarNames()) || spec.HTTP.Liveness != factosfx.PathHealth || spec.Commands[0].Args[0] != "run" {
		t.Fatalf("spec %+v", spec)
	}
}

// The fx graph is complete and acyclic for the worker's domain.
func TestFxGraphValidates(t *testing.T) {
	t.Parallel()
	for _, temporal := range []string{"true", "false"} {
		cfg, err := factosfx.LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://u:p@127.0.0.1:1/x", "TEMPORAL_ENABLED": temporal,
			"RIVERUI_ENABLED": "true", "RIVERUI_ALLOW_UNAUTHENTICATED": "true"}))
		if err != nil {
			t.Fatal(err)
		}
		if err := fx.ValidateApp(factosfx.Options(cfg, factosfx.Domain{Name: "empty"})); err != nil {
			t.Fatalf("temporal=%s: %v", temporal, err)
		}
	}
}

func TestTracingConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env      map[string]string
		exporter string
		protocol string
		bad      string
	}{
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, exporter: "otlp", protocol: "http/protobuf"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, exporter: "otlp", protocol: "grpc"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, exporter: "none", protocol: "http/protobuf"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, bad: "OTEL_TRACES_EXPORTER"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, bad: "OTEL_EXPORTER_OTLP_PROTOCOL"},
	} {
		tc.env["DATABASE_URL"] = "postgres://u:p@db:5432/factos"
		cfg, err := factosfx.LoadConfig(env(tc.env))
		if tc.bad != "" {
			var ce *factosfx.ConfigError
			if !errors.As(err, &ce) || ce.Var != tc.bad {
				t.Errorf("%v: error %v, want one naming %s", tc.env, err, tc.bad)
			}
			continue
		}
		if err != nil || cfg.TracesExporter != tc.exporter || cfg.OTLPProtocol != tc.protocol {
			t.Errorf("%v: %+v %v, want exporter %s protocol %s", tc.env, cfg, err, tc.exporter, tc.protocol)
		}
	}
}
