package factosfx

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"

	"github.com/factos-go/factos/migrations"
)

// spec is the binary's spec: the built-in commands and the application's,
// and the domain's projections.
func (c *cli) spec() (Spec, error) {
	s, err := DomainSpec(c.domain)
	s.Commands = c.commands()
	return s, err
}

// loadConfig reads the environment, printing what is wrong (every variable
// at once, one a line) and returning nil when it is invalid.
func loadConfig() *Config {
	cfg, err := LoadConfig(nil)
	if err != nil {
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, "worker:", e)
		}
		fmt.Fprintln(os.Stderr, "worker: `worker spec` lists every variable with its default")
		return nil
	}
	return cfg
}

// openPool opens the pool and checks that the database answers, printing
// why not in plain words. A command that needs the database and cannot
// reach it ends with exit code 1.
func openPool(ctx context.Context, cmd string, cfg *Config) (*pgxpool.Pool, bool) {
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err == nil {
		err = PingDatabase(ctx, pool)
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker %s: %v\n", cmd, err)
		return nil, false
	}
	return pool, true
}

// connect reads the configuration and opens the database for the command
// cmd, printing what is wrong. pool is nil when it cannot; code is then
// the exit code: 2 for the configuration, 1 for the database.
func connect(ctx context.Context, cmd string) (cfg *Config, pool *pgxpool.Pool, code int) {
	if cfg = loadConfig(); cfg == nil {
		return nil, nil, 2
	}
	pool, ok := openPool(ctx, cmd, cfg)
	if !ok {
		return nil, nil, 1
	}
	return cfg, pool, 0
}

// connectMigrated is connect for an operating command, which needs the
// schema: on a database not (fully) migrated it says so and names the
// fix, instead of failing on a missing table.
func (c *cli) connectMigrated(ctx context.Context, cmd string) (cfg *Config, pool *pgxpool.Pool, code int) {
	cfg, pool, code = connect(ctx, cmd)
	if pool == nil {
		return nil, nil, code
	}
	st, err := migrations.ReadStatus(ctx, pool, c.domain.MigrationConfig(nil))
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "worker %s: %v\n", cmd, err)
	case !st.Current():
		fmt.Fprintf(os.Stderr, "worker %s: the database is not migrated (pending: %v): run `worker migrate` first\n", cmd, st.Pending())
	default:
		return cfg, pool, 0
	}
	pool.Close()
	return nil, nil, 1
}

// subcommand starts an operating command of group (effects, projections,
// reactors): no argument prints usage on stderr (exit 2), help prints it
// on stdout (exit 0); otherwise it returns the subcommand and the flag set
// its flags go in, whose -h describes the subcommand. ok says whether the
// command goes on.
func (c *cli) subcommand(args []string, group, usage string) (sub string, fs *flag.FlagSet, code int, ok bool) {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return "", nil, 2, false
	}
	sub = args[0]
	if IsHelp(sub) || sub == "help" {
		fmt.Print(usage)
		return "", nil, 0, false
	}
	fs = c.flags(group+" "+sub, "")
	fs.SetOutput(os.Stderr)
	return sub, fs, 0, true
}

// runWorker runs until SIGINT or SIGTERM (fx listens for both) or until a
// component asks to shut down, then stops gracefully.
func (c *cli) runWorker(ctx context.Context) int {
	cfg := loadConfig()
	if cfg == nil {
		return 2
	}
	app := fx.New(Options(cfg, c.domain))
	if err := app.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	startCtx, cancel := context.WithTimeout(ctx, fx.DefaultTimeout)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		fmt.Fprintln(os.Stderr, "worker: start:", err)
		return 1
	}
	sig := <-app.Wait()
	stopCtx, stopCancel := context.WithTimeout(context.WithoutCancel(ctx), app.StopTimeout())
	defer stopCancel()
	if err := app.Stop(stopCtx); err != nil {
		fmt.Fprintln(os.Stderr, "worker: stop:", err)
		return 1
	}
	return sig.ExitCode
}
