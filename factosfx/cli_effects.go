package factosfx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"

	"github.com/factos-go/factos/reactors"
)

const effectsUsage = `usage:
  worker effects status [-json]
  worker effects list [-id JOB] [-effect KEY] [-kind KIND] [-key ORDERING_KEY] [-state STATE] [-limit N] [-json]
  worker effects retry (EFFECT_KEY | -id JOB)
  worker effects skip (EFFECT_KEY | -id JOB)
`

// runEffects operates the effects in the database, ordered and unordered,
// beside running workers: it needs none.
func (c *cli) runEffects(ctx context.Context, args []string) int {
	sub, fs, code, ok := c.subcommand(args, "effects", effectsUsage)
	if !ok {
		return code
	}
	var f reactors.EffectJobFilter
	fs.Int64Var(&f.JobID, "id", 0, "list, retry, skip: the effect's River job id")
	fs.StringVar(&f.EffectKey, "effect", "", "list: the effect key")
	fs.StringVar(&f.Kind, "kind", "", "list: the effect kind")
	fs.StringVar(&f.OrderingKey, "key", "", "list: the ordering key")
	fs.StringVar(&f.State, "state", "", "list: River's job state (available, running, retryable, discarded, ...) or an ordered effect's (waiting, running, done, failed, skipped)")
	fs.IntVar(&f.Limit, "limit", 100, "list: at most this many, newest first")
	asJSON := fs.Bool("json", false, "status, list: print JSON")
	pos, code, ok := parseInterleaved(fs, args[1:])
	if !ok {
		return code
	}
	switch {
	case sub == "status" || sub == "list":
		if len(pos) != 0 {
			fmt.Fprintf(os.Stderr, "worker effects %s: unexpected arguments %q\n%s", sub, pos, effectsUsage)
			return 2
		}
		if states := effectStates(); f.State != "" && !slices.Contains(states, f.State) {
			fmt.Fprintf(os.Stderr, "worker effects list: unknown -state %q: one of %s\n", f.State, strings.Join(states, ", "))
			return 2
		}
	case sub == "retry" || sub == "skip":
		if (len(pos) == 1) == (f.JobID != 0) || len(pos) > 1 {
			fmt.Fprintf(os.Stderr, "worker effects %s: give an effect key or -id JOB, one of them\n%s", sub, effectsUsage)
			return 2
		}
	default:
		fmt.Fprintf(os.Stderr, "worker effects: unknown command %q\n%s", sub, effectsUsage)
		return 2
	}
	cfg, pool, code := c.connectMigrated(ctx, "effects")
	if pool == nil {
		return code
	}
	defer pool.Close()
	failed := func(err error) int {
		fmt.Fprintf(os.Stderr, "worker effects %s: %v\n", sub, err)
		return 1
	}

	switch sub {
	case "status":
		return effectStatus(ctx, pool, *asJSON)
	case "list":
		effects, err := reactors.EffectJobs(ctx, pool, f)
		if err != nil {
			return failed(err)
		}
		if *asJSON {
			return printJSON(os.Stdout, effects)
		}
		printEffects(os.Stdout, effects)
		return 0
	}
	key := ""
	if len(pos) == 1 {
		key = pos[0]
	} else {
		var err error
		if key, err = reactors.EffectKeyOfJob(ctx, pool, f.JobID); err != nil {
			return failed(err)
		}
	}
	reg, store, err := c.reactorRegistry(cfg, pool)
	if err != nil {
		return failed(err)
	}
	if sub == "retry" {
		err = reg.RetryEffect(ctx, store, key)
	} else {
		err = reg.SkipEffect(ctx, pool, key)
	}
	var se *reactors.EffectStateError
	switch {
	case errors.As(err, &se):
		fmt.Fprintf(os.Stderr, "worker effects %s: %v (`worker effects list -effect %s` shows it)\n", sub, err, key)
		return 3
	case err != nil:
		return failed(err)
	}
	if sub == "retry" {
		fmt.Printf("effect %s runs again (an ordered one when its key reaches it)\n", key)
	} else {
		fmt.Printf("effect %s skipped: it will not run, and its key (if ordered) goes on\n", key)
	}
	return 0
}

// effectStates are the states -state selects: River's job states and an
// ordered effect's (running is both).
func effectStates() []string {
	out := []string{reactors.EffectWaiting, reactors.EffectRunning, reactors.EffectDone, reactors.EffectFailed, reactors.EffectSkipped}
	for _, st := range rivertype.JobStates() {
		if !slices.Contains(out, string(st)) {
			out = append(out, string(st))
		}
	}
	return out
}

// effectStatus prints effect jobs by kind and state, and the ordered
// effects' keys that are halted; it exits 3 when one is.
func effectStatus(ctx context.Context, pool *pgxpool.Pool, asJSON bool) int {
	counts, err := reactors.EffectCounts(ctx, pool)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker effects status:", err)
		return 1
	}
	keys, err := reactors.Sequences(ctx, pool, reactors.SequencesFilter{Limit: 1000})
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker effects status:", err)
		return 1
	}
	var halted []reactors.KeyStatus
	for _, k := range keys {
		if k.Halted {
			halted = append(halted, k)
		}
	}
	code := 0
	if len(halted) > 0 {
		code = 3
	}
	if asJSON {
		out := struct {
			Jobs []reactors.EffectKindCount `json:"jobs"`
			// Keys are the ordering keys with unfinished effects (at most
			// 1000), halted ones included.
			Keys []reactors.KeyStatus `json:"keys"`
		}{counts, keys}
		if c := printJSON(os.Stdout, out); c != 0 {
			return c
		}
		return code
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tSTATE\tJOBS")
	for _, c := range counts {
		fmt.Fprintf(w, "%s\t%s\t%d\n", c.Kind, c.State, c.Jobs)
	}
	_ = w.Flush()
	fmt.Printf("\n%d ordering keys have unfinished effects, %d of them halted\n", len(keys), len(halted))
	for _, k := range halted {
		h := k.Head
		fmt.Printf("\nkey %s is halted at effect %s (%s, position %d), %d unfinished:\n  %s\n  `worker effects retry %s` runs it again; `worker effects skip %s` goes on without it.\n",
			k.OrderingKey, h.EffectKey, h.Kind, h.Position, k.Unfinished, h.LastError, h.EffectKey, h.EffectKey)
	}
	return code
}

func printEffects(out io.Writer, effects []reactors.EffectJob) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "JOB\tKIND\tEFFECT KEY\tORDERING KEY\tSEQUENCE\tJOB STATE\tATTEMPT\tPOSITION\tCREATED\tLAST ERROR")
	for _, e := range effects {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", e.JobID, e.Kind, e.EffectKey, dash(e.OrderingKey), dash(e.Sequence),
			dash(e.JobState), e.Attempt, e.MaxAttempts, e.Position, e.CreatedAt.Format(time.RFC3339), e.LastError)
	}
	_ = w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printJSON(out io.Writer, v any) int {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
