// Command factos-bench measures the event store under each lock strategy and
// writes the results as JSON (benchmarks.json), a report
// (benchmarks.md) and a chart (benchmarks.svg).
//
// It starts a throwaway PostgreSQL cluster from the local server binaries,
// unless -database-url (default $DATABASE_URL) names a server; there it
// creates and drops databases of its own, so the role needs CREATEDB. The
// temporal scenario uses the Temporal server at -temporal-address (default
// $TEMPORAL_ADDRESS) when it answers, else a dev server started from the
// pinned temporal CLI.
//
//	go run ./cmd/factos-bench                  # the full run, about 30 minutes
//	go run ./cmd/factos-bench -quick -out /tmp # a smoke run, seconds
//
// The throwaway cluster runs without fsync and synchronous commit unless
// -durable is given: see docs/benchmarks.md for why that is the default.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/internal/bench"
	"github.com/factos-go/factos/internal/devenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "factos-bench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	duration, warmup            time.Duration
	clients, history            string
	scenarios, strategies       string
	out                         string
	durable, quick              bool
	repeat, repeatHigh          int
	databaseURL                 string
	statements, explain         bool
	cpuProfile                  string
	catchUpEvents, hotEpoch     int
	catchUpWriters, maxAttempts int
	maxOther                    float64
	remeasure                   int
	effectRates                 string
	effectOrderingKeys          int
	tailRates                   string
	minCommands                 int
	projectionBatchSizes        string
	projectionRates             string
	temporalAddress             string
}

func parseFlags() *options {
	o := &options{}
	flag.DurationVar(&o.duration, "duration", bench.DefaultDuration, "measured time per cell")
	flag.DurationVar(&o.warmup, "warmup", bench.DefaultWarmup, "unmeasured warm-up before each cell")
	flag.StringVar(&o.clients, "clients", ints(bench.DefaultClients), "comma-separated client counts")
	flag.StringVar(&o.scenarios, "scenarios", strings.Join(bench.AllScenarios, ","), "comma-separated scenarios to run")
	flag.StringVar(&o.strategies, "strategies", "keys,table,serializable", "comma-separated lock strategies to compare (serializable: the SERIALIZABLE baseline the store does not offer)")
	flag.StringVar(&o.history, "history", ints(bench.DefaultHistorySizes), "comma-separated history sizes (events stored)")
	flag.StringVar(&o.out, "out", "docs", "directory for benchmarks.json, benchmarks.md and benchmarks.svg")
	flag.BoolVar(&o.durable, "durable", false, "keep fsync, synchronous_commit and full_page_writes on in the throwaway cluster (no effect with -database-url)")
	flag.BoolVar(&o.quick, "quick", false, "smoke run: short cells, clients 1,4, small histories (flags given explicitly still win)")
	flag.IntVar(&o.repeat, "repeat", 1, "measurements per cell")
	flag.IntVar(&o.repeatHigh, "repeat-high", bench.DefaultHighRepeats, fmt.Sprintf("measurements per cell with %d or more clients", bench.DefaultHighClients))
	flag.StringVar(&o.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "server to create the benchmark databases on (default: a throwaway cluster)")
	flag.BoolVar(&o.statements, "statements", true, "collect pg_stat_statements per cell (the throwaway cluster preloads it)")
	flag.BoolVar(&o.explain, "explain", true, "EXPLAIN ANALYZE a history dispatch's statements at each size")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the benchmark process to this file")
	flag.IntVar(&o.catchUpEvents, "catchup-events", bench.DefaultCatchUpEvents, "events stored before the catch-up reads")
	flag.IntVar(&o.catchUpWriters, "catchup-writers", bench.DefaultCatchUpWriters, "writers running during the catch-up reads")
	flag.IntVar(&o.hotEpoch, "hot-epoch", bench.DefaultHotEpoch, "tickets sold per concert before the hot scenario moves on")
	flag.IntVar(&o.maxAttempts, "max-attempts", eventstore.DefaultMaxAttempts, "the stores' MaxAttempts")
	flag.Float64Var(&o.maxOther, "max-other", bench.DefaultMaxOther, "cores other processes may use during a window before it is measured again (negative: never)")
	flag.StringVar(&o.effectRates, "effect-rates", "", "comma-separated fixed offered rates (commands/s) of the effects scenario (default: fractions of keys+outbox's throughput in the run, stepped up until the pipeline does not keep up)")
	flag.IntVar(&o.effectOrderingKeys, "effect-ordering-keys", bench.DefaultEffectOrderingKeys, "ordering keys the effects scenario's ordered runs spread their effects over (each rate runs unordered and ordered)")
	flag.StringVar(&o.tailRates, "tail-rates", ints(bench.DefaultTailRates), "comma-separated offered rates (commands/s) of the tail scenario")
	flag.IntVar(&o.minCommands, "min-commands", bench.DefaultMinCommands, "fewest commands a measured window decides: it lasts longer until it has (negative: none)")
	flag.StringVar(&o.projectionBatchSizes, "projection-batch-sizes", ints(bench.DefaultProjectionBatchSizes), "comma-separated batch sizes of the projection-catchup scenario")
	flag.StringVar(&o.projectionRates, "projection-rates", ints(bench.DefaultProjectionRates), "comma-separated offered rates (commands/s) of the projection-lag scenario")
	flag.StringVar(&o.temporalAddress, "temporal-address", os.Getenv("TEMPORAL_ADDRESS"), "Temporal frontend for the temporal scenario (default: a dev server started from the pinned temporal CLI)")
	flag.IntVar(&o.remeasure, "remeasure", bench.DefaultRemeasure, "how often a disturbed window is measured again (negative: never)")
	flag.Parse()
	return o
}

func run() error {
	o := parseFlags()
	cfg, err := o.config()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	adminURL := o.databaseURL
	if adminURL == "" {
		settings := map[string]string{}
		if o.statements {
			settings["shared_preload_libraries"] = "pg_stat_statements"
		}
		fmt.Fprintf(os.Stderr, "starting a throwaway PostgreSQL (durable=%v)\n", o.durable)
		pg, err := devenv.StartPostgres(ctx, devenv.PostgresOpts{Durable: o.durable, Settings: settings})
		if err != nil {
			return err
		}
		defer pg.Destroy() //nolint:errcheck // best effort at exit
		adminURL = pg.URL()
	}
	cfg.Databases = bench.ServerDatabases{AdminURL: adminURL}

	if addr := o.temporalAddress; addr != "" && devenv.CheckTemporal(ctx, addr, "default") == nil {
		cfg.TemporalAddress = addr
	} else {
		cfg.StartTemporal = func(ctx context.Context) (string, func(), error) {
			fmt.Fprintln(os.Stderr, "starting a Temporal dev server")
			srv, err := devenv.StartTemporal(ctx, devenv.TemporalOpts{})
			if err != nil {
				return "", nil, err
			}
			return srv.Address(), srv.Destroy, nil
		}
	}

	res, runErr := bench.Run(ctx, cfg)
	if res == nil {
		return runErr
	}
	return errors.Join(runErr, write(o.out, res))
}

// config turns the flags into a bench.Config. With -quick, the quick
// configuration's values apply to every flag not given explicitly.
func (o *options) config() (bench.Config, error) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg := bench.Config{}
	if o.quick {
		cfg = bench.QuickConfig()
	}
	var err error
	pick := func(name string, apply func() error) {
		if err == nil && (set[name] || !o.quick) {
			err = apply()
		}
	}
	pick("duration", func() error { cfg.Duration = o.duration; return nil })
	pick("warmup", func() error { cfg.Warmup = o.warmup; return nil })
	pick("clients", func() (e error) { cfg.Clients, e = parseInts(o.clients); return })
	pick("history", func() (e error) { cfg.HistorySizes, e = parseInts(o.history); return })
	if set["effect-rates"] {
		pick("effect-rates", func() (e error) { cfg.EffectRates, e = parseInts(o.effectRates); return })
	}
	pick("effect-ordering-keys", func() error { cfg.EffectOrderingKeys = o.effectOrderingKeys; return nil })
	pick("tail-rates", func() (e error) { cfg.TailRates, e = parseInts(o.tailRates); return })
	pick("min-commands", func() error { cfg.MinCommands = o.minCommands; return nil })
	pick("projection-batch-sizes", func() (e error) { cfg.ProjectionBatchSizes, e = parseInts(o.projectionBatchSizes); return })
	pick("projection-rates", func() (e error) { cfg.ProjectionRates, e = parseInts(o.projectionRates); return })
	pick("repeat-high", func() error { cfg.HighRepeats = o.repeatHigh; return nil })
	pick("catchup-events", func() error { cfg.CatchUpEvents = o.catchUpEvents; return nil })
	pick("catchup-writers", func() error { cfg.CatchUpWriters = o.catchUpWriters; return nil })
	pick("remeasure", func() error { cfg.Remeasure = o.remeasure; return nil })
	if err != nil {
		return cfg, err
	}
	cfg.Repeats = o.repeat
	cfg.HotEpoch = o.hotEpoch
	cfg.MaxAttempts = o.maxAttempts
	cfg.MaxOther = o.maxOther
	cfg.Statements = o.statements
	cfg.Explain = o.explain
	cfg.Scenarios = split(o.scenarios)
	for _, s := range split(o.strategies) {
		// The SERIALIZABLE baseline is measured beside the strategies the
		// store offers, but is not one of them.
		if s == string(bench.StrategySerializable) {
			cfg.Strategies = append(cfg.Strategies, bench.StrategySerializable)
			continue
		}
		ls, err := eventstore.ParseLockStrategy(s)
		if err != nil {
			return cfg, err
		}
		cfg.Strategies = append(cfg.Strategies, ls)
	}
	cfg.Command = commandLine()
	cfg.Log = os.Stderr
	return cfg, nil
}

func write(dir string, res *bench.Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mdPath := filepath.Join(dir, "benchmarks.md")
	old, err := os.ReadFile(mdPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	files := []struct {
		name  string
		write func(*os.File) error
	}{
		{"benchmarks.json", func(f *os.File) error { return bench.WriteJSON(f, res) }},
		{"benchmarks.md", func(f *os.File) error { return bench.WriteMarkdown(f, res, bench.Analysis(string(old))) }},
		{"benchmarks.svg", func(f *os.File) error { return bench.WriteSVG(f, res) }},
	}
	for _, file := range files {
		path := filepath.Join(dir, file.name)
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		err = file.write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("error writing %s: %w", path, err)
		}
		fmt.Fprintln(os.Stderr, "wrote", path)
	}
	return nil
}

// commandLine is how the run was started, for the report. A binary built
// by `go run` lives in a temporary directory; the report names the package.
func commandLine() string {
	args := append([]string{}, os.Args[1:]...)
	prog := os.Args[0]
	if strings.Contains(prog, "go-build") {
		prog = "go run ./cmd/factos-bench"
	}
	for i, a := range args {
		if u, err := url.Parse(a); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "REDACTED")
				a = u.String()
			}
		}
		args[i] = a
		if strings.ContainsAny(a, " \t'\"$") {
			args[i] = strconv.Quote(a)
		}
	}
	return strings.TrimSpace(prog + " " + strings.Join(args, " "))
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range split(s) {
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
