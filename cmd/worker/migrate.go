package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/factosfx"
	"github.com/factos-go/factos/migrations"
)

// runMigrate applies the factos, River and application migrations, or with
// "status" prints what is applied. Safe to run from several processes at
// once (a Helm hook and a developer, say).
func runMigrate(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	status := false
	switch fs.Arg(0) {
	case "":
	case "status":
		status = true
	default:
		fmt.Fprintf(os.Stderr, "worker migrate: unknown argument %q (want nothing or \"status\")\n", fs.Arg(0))
		return 2
	}
	cfg := loadConfig()
	if cfg == nil {
		return 2
	}
	log := factosfx.NewLogger(cfg)
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker migrate: DATABASE_URL cannot be parsed as a connection string")
		return 2
	}
	defer pool.Close()

	if status {
		st, err := migrations.ReadStatus(ctx, pool, nil)
		if err != nil {
			log.Error("error reading migration status", "error", err)
			return 1
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "LINE\tVERSION\tNAME\tAPPLIED")
		for _, line := range []struct {
			name string
			list []migrations.VersionStatus
		}{{"factos", st.Factos}, {"river", st.River}} {
			for _, v := range line.list {
				fmt.Fprintf(w, "%s\t%d\t%s\t%v\n", line.name, v.Version, v.Name, v.Applied)
			}
		}
		_ = w.Flush()
		if !st.Current() {
			fmt.Printf("pending: %v\n", st.Pending())
			return 3
		}
		fmt.Println("current")
		return 0
	}

	res, err := migrations.Up(ctx, pool, &migrations.Config{Logger: log})
	if err != nil {
		log.Error("migration failed", "error", err)
		return 1
	}
	domain := ticketDomain()
	if domain.Migrate != nil {
		if err := domain.Migrate(ctx, pool); err != nil {
			log.Error("application migration failed", "domain", domain.Name, "error", err)
			return 1
		}
	}
	log.Info("migrations applied", slog.Any("factos", res.Factos), slog.Any("river", res.River), "domain", domain.Name)
	return 0
}
