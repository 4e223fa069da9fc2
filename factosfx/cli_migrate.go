package factosfx

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"text/tabwriter"

	"github.com/factos-go/factos/migrations"
)

// runMigrate applies the factos, River and application migrations, or with
// "status" prints what is applied. Safe to run from several processes at
// once (a Helm hook and a developer, say).
func (c *cli) runMigrate(ctx context.Context, args []string) int {
	fs := c.flags("migrate", " [status]")
	if code, ok := parseFlags(fs, args, "status"); !ok {
		return code
	}
	status := fs.Arg(0) == "status"
	if status {
		if code, ok := parseFlags(c.flags("migrate status", ""), fs.Args()[1:]); !ok {
			return code
		}
	}
	cfg, pool, code := connect(ctx, "migrate")
	if pool == nil {
		return code
	}
	log := NewLogger(cfg)
	defer pool.Close()

	if status {
		st, err := migrations.ReadStatus(ctx, pool, c.domain.MigrationConfig(nil))
		if err != nil {
			log.Error("error reading migration status", "error", ExplainDatabaseError(err))
			return 1
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "LINE\tVERSION\tNAME\tAPPLIED")
		for _, line := range st.Lines() {
			for _, v := range line.Versions {
				fmt.Fprintf(w, "%s\t%d\t%s\t%v\n", line.Name, v.Version, v.Name, v.Applied)
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

	res, err := migrations.Up(ctx, pool, c.domain.MigrationConfig(log))
	if err != nil {
		log.Error("migration failed", "error", ExplainDatabaseError(err))
		return 1
	}
	log.Info("migrations applied", slog.Any("factos", res.Factos), slog.Any("river", res.River),
		"domain", c.domain.name(), slog.Any("application", res.Application))
	return 0
}
