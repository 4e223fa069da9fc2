package factosfx

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"
)

// NewPool opens the pgx pool. It does not wait for the database: the pool
// connects on demand and reconnects after a restart, and readiness reports
// whether the database answers. The pool closes last on stop.
func NewPool(lc fx.Lifecycle, cfg *Config, log *slog.Logger) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		// pgx's parse errors can echo the connection string; do not.
		return nil, &ConfigError{Var: "DATABASE_URL", Reason: "cannot be parsed as a connection string"}
	}
	pc.MaxConns = cfg.DatabaseMaxConns
	pc.ConnConfig.RuntimeParams["application_name"] = "factos-worker"
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("error creating the database pool: %w", err)
	}
	lc.Append(fx.StopHook(func() {
		pool.Close()
		log.Info("database pool closed")
	}))
	return pool, nil
}
