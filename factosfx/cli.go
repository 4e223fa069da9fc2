package factosfx

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Main runs the worker binary of an application: `worker run` (the
// default), `migrate`, `spec`, `lock-strategy`, and the operating commands
// of projections, effects and reactors, all for domain, plus the
// application's own commands. It exits the process with the command's
// exit code. A whole application's main is
//
//	func main() { factosfx.Main(myapp.Domain()) }
//
// cmd/worker is this call with the ticket example's domain and its demo.
func Main(domain Domain, commands ...Command) {
	os.Exit(RunCommand(context.Background(), domain, os.Args[1:], commands...))
}

// RunCommand runs the worker command that args select (os.Args[1:] in a
// main) and returns its exit code: 0 done, 1 failed, 2 bad usage or
// configuration, 3 a status command found something wrong. Main calls
// it; tests call it directly.
func RunCommand(ctx context.Context, domain Domain, args []string, commands ...Command) int {
	c := &cli{domain: domain, extra: commands}
	for _, cmd := range commands {
		if len(cmd.Args) == 0 || cmd.Run == nil || c.builtin(cmd.Args[0]) {
			fmt.Fprintf(os.Stderr, "worker: command %q needs Args, Run and a first word of its own\n", cmd.Name)
			return 2
		}
	}
	return c.run(ctx, args)
}

// Command is an application's own subcommand of the worker binary.
type Command struct {
	// CommandSpec names it (Name "demo tickets"), gives the words that
	// select it (Args: the first must not be a built-in command) and
	// describes it (its -h and `worker spec` print Description).
	CommandSpec
	// Synopsis is its line in the binary's usage, as "demo tickets
	// [flags]  run a concurrent ticket sale".
	Synopsis string
	// Run runs it with the arguments after its first word and returns
	// the exit code (see RunCommand).
	Run func(ctx context.Context, env *CommandEnv, args []string) int
}

// CommandEnv is what the worker gives an application's command: the same
// flag handling, configuration and database checks as the built-in ones.
type CommandEnv struct {
	Domain Domain
	cli    *cli
	name   string
}

// Flags returns the flag set of the command named name, whose -h prints
// "usage: worker NAME ARGS" and the command's Description.
func (e *CommandEnv) Flags(name, argsSyntax string) *flag.FlagSet {
	return e.cli.flags(name, argsSyntax)
}

// Parse parses args into fs. ok says whether the command goes on;
// otherwise it returns code: 0 after -h, 2 after a bad flag or a stray
// argument (printed with the usage). allowArgs are the positional
// arguments the command accepts first.
func (e *CommandEnv) Parse(fs *flag.FlagSet, args []string, allowArgs ...string) (code int, ok bool) {
	return parseFlags(fs, args, allowArgs...)
}

// Config reads the configuration from the environment; when it is invalid
// it prints every problem and returns nil (exit with code 2 then).
func (e *CommandEnv) Config() *Config { return loadConfig() }

// Pool opens a pool on cfg's database and checks that it answers; when it
// does not it prints why in plain words and returns nil (exit with code 1
// then). The caller closes the pool.
func (e *CommandEnv) Pool(ctx context.Context, cfg *Config) *pgxpool.Pool {
	pool, _ := openPool(ctx, e.name, cfg)
	return pool
}

// IsHelp reports whether arg asks for help (-h, -help, --help).
func IsHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// cli is one run of the worker binary.
type cli struct {
	domain Domain
	extra  []Command
}

// builtin reports whether word selects a built-in command.
func (c *cli) builtin(word string) bool {
	return slices.Contains([]string{"spec", "run", "migrate", "lock-strategy", "projections", "effects", "reactors", "help"}, word)
}

func (c *cli) usage() string {
	u := builtinUsage
	for _, cmd := range c.extra {
		if cmd.Synopsis != "" {
			u += "  worker " + cmd.Synopsis + "\n"
		}
	}
	return u + usageFooter
}

// commands are the built-in commands' specs and the application's.
func (c *cli) commands() []CommandSpec {
	out := slices.Clone(Commands)
	for _, cmd := range c.extra {
		out = append(out, cmd.CommandSpec)
	}
	return out
}

func (c *cli) run(ctx context.Context, args []string) int {
	if len(args) > 0 && IsHelp(args[0]) {
		fmt.Print(c.usage())
		return 0
	}
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if cmd != "run" {
		// An operating command that waits (a rebuild, status -wait) ends
		// on SIGINT or SIGTERM like run does, its transactions rolled
		// back, instead of dying by the signal. (run: fx listens.)
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	switch cmd {
	case "spec":
		if code, ok := parseFlags(c.flags("spec", ""), args); !ok {
			return code
		}
		spec, err := c.spec()
		if err != nil {
			fmt.Fprintln(os.Stderr, "worker spec:", err)
			return 1
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "run":
		if code, ok := parseFlags(c.flags("run", ""), args); !ok {
			return code
		}
		return c.runWorker(ctx)
	case "migrate":
		return c.runMigrate(ctx, args)
	case "lock-strategy":
		return c.runLockStrategy(ctx, args)
	case "projections":
		return c.runProjections(ctx, args)
	case "effects":
		return c.runEffects(ctx, args)
	case "reactors":
		return c.runReactors(ctx, args)
	case "help":
		fmt.Print(c.usage())
		return 0
	}
	for _, x := range c.extra {
		if x.Args[0] == cmd {
			return x.Run(ctx, &CommandEnv{Domain: c.domain, cli: c, name: x.Args[0]}, args)
		}
	}
	fmt.Fprintf(os.Stderr, "worker: unknown command %q\n%s", cmd, c.usage())
	return 2
}

const builtinUsage = `usage:
  worker [run]                 run until SIGINT/SIGTERM
  worker migrate               apply migrations and exit
  worker migrate status        print applied and pending migrations
  worker lock-strategy [set NAME --writers-stopped]
                               print (or change) the database's lock strategy
  worker spec                  print the environment and HTTP contract as JSON
  worker projections status [-wait D] [-json]
                               print the projections' checkpoints, lag and state
  worker projections reset|rebuild NAME [-from POS] [-reason TEXT]
                               start a projection again from POS (default 0)
  worker projections skip NAME POS [-reason TEXT]
                               skip the event a projection is stuck at, recorded
  worker effects status [-json]
                               effect jobs by kind and state; halted ordering keys
  worker effects list [-id JOB] [-effect KEY] [-kind K] [-key ORDERING_KEY] [-state S]
                               list effects, newest first
  worker effects retry|skip (EFFECT_KEY | -id JOB)
                               run a failed effect again, or go on without it
  worker reactors status [-json]
                               print each reactor's ledger position, lag and jobs
  worker reactors replay NAME [-from POS] [-name CHECKPOINT]
                               enqueue the reactions NAME has not run after POS
  worker reactors reset NAME [-from POS] [-effects] [-no-replay]
                               forget NAME's reactions after POS and run them again
`

const usageFooter = `
Configuration comes from the environment; ` + "`worker spec`" + ` lists every
variable with its default. ` + "`worker COMMAND -h`" + ` describes a command.
`

// flags returns the flag set of a subcommand (its name as in its
// CommandSpec), whose usage says what the command does.
func (c *cli) flags(name, argsSyntax string) *flag.FlagSet {
	fs := flag.NewFlagSet("worker "+name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: worker %s%s\n\n", name, argsSyntax)
		for _, cmd := range c.commands() {
			if cmd.Name == name {
				fmt.Fprintf(out, "%s\n", cmd.Description)
			}
		}
		fmt.Fprintln(out, "Configuration comes from the environment; `worker spec` lists every variable with its default.")
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(out, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses a subcommand's arguments. -h prints the command's
// usage on stdout and ends it with exit code 0; a bad flag or a stray
// argument prints the problem and the usage on stderr, exit code 2. ok
// says whether the command should go on.
func parseFlags(fs *flag.FlagSet, args []string, allowArgs ...string) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 && !slices.Contains(allowArgs, fs.Arg(0)) {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		return parseFailed(fs, err), false
	}
	fs.SetOutput(os.Stderr)
	return 0, true
}

// parseFailed ends a subcommand whose arguments did not parse, and returns
// its exit code: after -h the usage on stdout, 0; after a bad flag or
// argument the problem and the usage on stderr, 2.
func parseFailed(fs *flag.FlagSet, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(os.Stdout)
		fs.Usage()
		return 0
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
	fs.SetOutput(os.Stderr)
	fs.Usage()
	return 2
}
