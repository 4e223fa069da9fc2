package factosfx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/fx"

	"github.com/factos-go/factos"
	"github.com/factos-go/factos/migrations"
)

const (
	componentDatabase   = "database"
	componentMigrations = "migrations"
	componentRiver      = "river"
	componentTemporal   = "temporal"
)

// Readiness tracks what /readyz reports.
type Readiness struct {
	pool     *pgxpool.Pool
	mig      *migrations.Config
	temporal bool
	log      *slog.Logger

	mu      sync.Mutex
	started map[string]bool
	stopped bool
	// The migration check reads two tables; cache it briefly so a busy
	// probe does not become load.
	migChecked time.Time
	migErr     error
}

// NewReadiness returns the readiness tracker.
func NewReadiness(cfg *Config, domain Domain, pool *pgxpool.Pool, l *slog.Logger) *Readiness {
	return &Readiness{pool: pool, mig: domain.MigrationConfig(nil), temporal: cfg.TemporalEnabled, log: l, started: map[string]bool{}}
}

func (r *Readiness) set(component string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started[component] = ok
}

func (r *Readiness) stopping() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
}

// ping checks that the database answers. A busy worker may hold every
// connection of its pool (River's workers outnumber them), and a ping
// through the pool would then wait for one and report the database
// unreachable: in that case it asks the database on a connection of its
// own.
func (r *Readiness) ping(ctx context.Context) error {
	if !r.poolExhausted() {
		return r.pool.Ping(ctx)
	}
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return conn.Ping(ctx)
}

// poolExhausted reports whether every connection the pool may open is in
// use.
func (r *Readiness) poolExhausted() bool {
	st := r.pool.Stat()
	return st.AcquiredConns() >= st.MaxConns()
}

// Check reports each component's state and whether all are ready.
func (r *Readiness) Check(ctx context.Context) (map[string]string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out := map[string]string{}
	ok := true
	fail := func(c, why string) { out[c], ok = why, false }

	if err := r.ping(ctx); err != nil {
		fail(componentDatabase, "unreachable")
	} else {
		out[componentDatabase] = "ok"
	}

	r.mu.Lock()
	if time.Since(r.migChecked) > 5*time.Second && !r.poolExhausted() {
		// (With every connection of the pool busy the status cannot be
		// read in time: the last one stands until one is free.)
		r.mu.Unlock()
		st, err := migrations.ReadStatus(ctx, r.pool, r.mig)
		switch {
		case err != nil:
			// The probe's body is for anyone who can reach the port: the
			// error, which names the database, role and host, goes to the
			// log only.
			r.log.WarnContext(ctx, "readiness: error reading the migration status", "err", err)
			err = errors.New("status unreadable")
		case !st.Current():
			err = errors.New("pending")
		}
		r.mu.Lock()
		r.migChecked, r.migErr = time.Now(), err
	}
	migErr, started, stopped := r.migErr, r.started, r.stopped
	if migErr != nil {
		fail(componentMigrations, migErr.Error())
	} else {
		out[componentMigrations] = "ok"
	}
	components := []string{componentRiver}
	if r.temporal {
		components = append(components, componentTemporal)
	}
	for _, c := range components {
		if started[c] {
			out[c] = "ok"
		} else {
			fail(c, "not started")
		}
	}
	r.mu.Unlock()
	if stopped {
		fail("process", "stopping")
	}
	return out, ok
}

func registerHTTP(lc fx.Lifecycle, cfg *Config, l *slog.Logger, m *Metrics, ready *Readiness, fc *factos.Client) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		// Liveness is the process only: a database outage must not make
		// the orchestrator kill workers that would recover by themselves.
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+PathReady, func(w http.ResponseWriter, req *http.Request) {
		status, ok := ready.Check(req.Context())
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": ok, "components": status})
	})
	mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))

	uiCtx, uiCancel := context.WithCancel(context.Background())
	if cfg.RiverUIEnabled {
		ui, err := NewRiverUIHandler(fc.River(), RiverUIConfig{
			Prefix:               PathRiverUI,
			Username:             cfg.RiverUIUsername,
			Password:             cfg.RiverUIPassword,
			AllowUnauthenticated: cfg.RiverUIAllowUnauthenticated,
			Logger:               l.With("component", "riverui"),
		})
		if err != nil {
			uiCancel()
			return err
		}
		mux.Handle(PathRiverUI, ui)
		lc.Append(fx.StartHook(func() error { return ui.Start(uiCtx) }))
	}

	srv := &http.Server{Addr: cfg.HTTPAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			// Listen now so that a taken port fails start-up at once.
			ln, err := net.Listen("tcp", cfg.HTTPAddr)
			if err != nil {
				return fmt.Errorf("%w (HTTP_ADDR: set another address, or stop what listens there)", err)
			}
			l.Info("HTTP server listening", "addr", ln.Addr().String(), "riverui", cfg.RiverUIEnabled)
			go func() {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					l.Error("HTTP server failed", "error", err)
				}
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			uiCancel()
			return srv.Shutdown(ctx)
		},
	})
	return nil
}
