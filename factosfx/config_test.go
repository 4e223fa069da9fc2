package factosfx_test

import (
	"errors"
	"log/slog"
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
		HTTPAddr: ":8080", LogLevel: slog.LevelInfo, LogFormat: "json", ReactionWorkers: 10, EffectWorkers: 10,
		FetchCooldown: 10 * time.Millisecond, JobTimeout: time.Minute, RescueAfter: time.Hour,
		LockStrategy: eventstore.LockKeys, ShutdownTimeout: 30 * time.Second,
		ProjectionBatchSize: 500, ProjectionPollInterval: 25 * time.Millisecond, ProjectionLeaseInterval: 2 * time.Second,
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
		{map[string]string{"RIVER_JOB_TIMEOUT": "0s"}, "RIVER_JOB_TIMEOUT"},
		{map[string]string{"RIVER_FETCH_COOLDOWN": "500us"}, "RIVER_FETCH_COOLDOWN"},
		{map[string]string{"RIVER_FETCH_COOLDOWN": "fast"}, "RIVER_FETCH_COOLDOWN"},
		{map[string]string{"RIVER_JOB_TIMEOUT": "2m", "RIVER_RESCUE_AFTER": "1m"}, "RIVER_RESCUE_AFTER"},
		{map[string]string{"RIVERUI_ENABLED": "true"}, "RIVERUI_USERNAME"},
		{map[string]string{"RIVERUI_ENABLED": "true", "RIVERUI_USERNAME": "admin"}, "RIVERUI_USERNAME"},
		{map[string]string{"PROJECTION_BATCH_SIZE": "0"}, "PROJECTION_BATCH_SIZE"},
		{map[string]string{"PROJECTION_BATCH_SIZE": "20000"}, "PROJECTION_BATCH_SIZE"},
		{map[string]string{"PROJECTION_POLL_INTERVAL": "100us"}, "PROJECTION_POLL_INTERVAL"},
		{map[string]string{"PROJECTION_LEASE_INTERVAL": "never"}, "PROJECTION_LEASE_INTERVAL"},
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
