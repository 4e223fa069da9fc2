package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testtemporal"
)

// -h describes a command and exits 0, for every command, without any
// configuration.
func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "usage:\n  worker [run]"},
		{[]string{"--help"}, "usage:\n  worker [run]"},
		{[]string{"help"}, "usage:\n  worker [run]"},
		{[]string{"run", "-h"}, "usage: worker run\n\nRun the Temporal worker"},
		{[]string{"migrate", "-h"}, "usage: worker migrate [status]\n\nApply the event store"},
		{[]string{"migrate", "status", "-h"}, "usage: worker migrate status\n\nPrint which migrations"},
		{[]string{"demo", "-h"}, "usage: worker demo tickets [flags]"},
		{[]string{"demo", "tickets", "-h"}, "usage: worker demo tickets [flags]\n\nRun a concurrent ticket sale"},
		{[]string{"demo", "tickets", "--help"}, "-capacity int"},
		{[]string{"spec", "-h"}, "usage: worker spec\n\nPrint this description as JSON."},
		{[]string{"reactors", "-h"}, "usage:\n  worker reactors status [-json]"},
		{[]string{"effects", "-h"}, "usage:\n  worker effects status [-json]"},
		{[]string{"effects", "help"}, "worker effects retry (EFFECT_KEY | -id JOB)"},
		{[]string{"projections", "status", "-h"}, "usage: worker projections status\n\nPrint every projection's checkpoint"},
		{[]string{"projections", "skip", "-h"}, "usage: worker projections skip\n\nSkip the event a projection is stuck at"},
		{[]string{"effects", "list", "-h"}, "usage: worker effects list\n\nList effects"},
		{[]string{"reactors", "replay", "--help"}, "usage: worker reactors replay\n\nEnqueue the reactions"},
		{[]string{"reactors", "status", "-h"}, `-no-replay` + "\n"},
		{[]string{"lock-strategy", "-h"}, "usage:\n  worker lock-strategy "},
		{[]string{"lock-strategy", "set", "-h"}, "usage:\n  worker lock-strategy "},
	} {
		stdout, stderr, code := command(t, env, tc.args...)
		if code != 0 || !strings.Contains(stdout, tc.want) || stderr != "" {
			t.Errorf("worker %s: exit %d, stdout %q, stderr %q; want exit 0 and %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
		}
	}
}

// A wrong flag or argument exits 2 and says what is wrong.
func TestBadArgumentsExitTwo(t *testing.T) {
	t.Parallel()
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-x"}, "worker run: flag provided but not defined: -x"},
		{[]string{"run", "now"}, `worker run: unexpected argument "now"`},
		{[]string{"migrate", "sideways"}, `worker migrate: unexpected argument "sideways"`},
		{[]string{"migrate", "status", "all"}, `worker migrate status: unexpected argument "all"`},
		{[]string{"demo"}, "usage: worker demo tickets"},
		{[]string{"demo", "concerts"}, "usage: worker demo tickets"},
		{[]string{"demo", "tickets", "-seats", "3"}, "worker demo tickets: flag provided but not defined: -seats"},
		{[]string{"spec", "yaml"}, `worker spec: unexpected argument "yaml"`},
		{[]string{"serve"}, `worker: unknown command "serve"`},
		{[]string{"reactors"}, "usage:\n  worker reactors status"},
		{[]string{"reactors", "rewind", "x"}, `worker reactors rewind: wrong arguments`},
		{[]string{"reactors", "reset"}, `worker reactors reset: wrong arguments`},
		{[]string{"reactors", "replay", "x", "-from", "-1"}, `worker reactors replay: wrong arguments`},
		{[]string{"effects"}, "usage:\n  worker effects status"},
		{[]string{"effects", "undo", "k"}, `worker effects: unknown command "undo"`},
		{[]string{"effects", "retry"}, `worker effects retry: give an effect key or -id JOB, one of them`},
		{[]string{"effects", "skip", "k", "-id", "3"}, `worker effects skip: give an effect key or -id JOB, one of them`},
		{[]string{"effects", "list", "k"}, `worker effects list: unexpected arguments`},
		{[]string{"effects", "status", "-wait", "1s"}, `flag provided but not defined: -wait`},
		{[]string{"projections", "status", "-x"}, "worker projections status: flag provided but not defined: -x\nusage: worker projections status"},
		{[]string{"lock-strategy", "set"}, "worker lock-strategy set: missing NAME"},
		{[]string{"projections", "reset", "concert_sales", "-from", "-5"}, "worker projections reset: -from -5 must not be negative"},
		{[]string{"effects", "list", "-state", "stuck"}, `worker effects list: unknown -state "stuck"`},
		{[]string{"lock-strategy", "set", "sometimes", "--writers-stopped"}, `unknown lock strategy "sometimes"`},
		{[]string{"lock-strategy", "show", "all"}, `worker lock-strategy: unexpected arguments ["show" "all"]`},
		{[]string{"lock-strategy", "set", "keys", "--writers-stopped", "now"}, `worker lock-strategy: unexpected arguments ["set" "keys" "now"]`},
	} {
		stdout, stderr, code := command(t, env, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("worker %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
		}
	}
}

// Every command the usage names is in `worker spec`, which tools read.
func TestSpecListsEveryCommand(t *testing.T) {
	t.Parallel()
	env := []string{"PATH=" + os.Getenv("PATH")}
	usage, _, _ := command(t, env, "-h")
	out, _, code := command(t, env, "spec")
	var spec struct {
		Commands []struct{ Name string } `json:"commands"`
	}
	if err := json.Unmarshal([]byte(out), &spec); err != nil || code != 0 {
		t.Fatalf("worker spec: exit %d, %v", code, err)
	}
	listed := map[string]bool{}
	for _, c := range spec.Commands {
		listed[c.Name] = true
	}
	for line := range strings.Lines(usage) {
		words, ok := strings.CutPrefix(strings.TrimSpace(line), "worker ")
		if !ok {
			continue
		}
		words, _, _ = strings.Cut(words, "  ") // the synopsis, without its description
		// The command's words: up to its first argument or flag; a|b
		// names two commands.
		names := []string{""}
		for _, w := range strings.Fields(strings.Trim(words, "[]")) {
			if w != strings.ToLower(w) || strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") || strings.HasPrefix(w, "(") {
				break
			}
			var next []string
			for _, n := range names {
				for _, alt := range strings.Split(strings.Trim(w, "[]"), "|") {
					next = append(next, strings.TrimSpace(n+" "+alt))
				}
			}
			names = next
		}
		for _, n := range names {
			if !listed[n] {
				t.Errorf("usage line %q: %q is not in worker spec's commands", strings.TrimSpace(line), n)
			}
		}
	}
}

// The operating commands, on a database not migrated yet, name the fix
// instead of failing on a missing table.
func TestOperatingCommandsNeedTheSchema(t *testing.T) {
	t.Parallel()
	env := []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + testdb.NewEmptyURL(t), "TEMPORAL_ENABLED=false"}
	for _, args := range [][]string{{"projections", "status"}, {"effects", "status"}, {"reactors", "status"}, {"lock-strategy"}} {
		_, stderr, code := command(t, env, args...)
		if code != 1 || !strings.Contains(stderr, "the database is not migrated") || !strings.Contains(stderr, "run `worker migrate` first") {
			t.Errorf("worker %s on an empty database: exit %d, stderr %q; want exit 1 and the fix", strings.Join(args, " "), code, stderr)
		}
	}
}

// A database nobody answers at gets one plain line: where, what happened,
// what to check.
func TestUnreachableDatabaseSaysSo(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t) // nothing listens there
	env := []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=postgres://app:hunter2@" + addr + "/factos"}
	for _, args := range [][]string{{"migrate"}, {"migrate", "status"}, {"demo", "tickets", "-direct"}} {
		_, stderr, code := command(t, env, args...)
		want := "worker " + args[0] + `: cannot use the database at ` + addr + ` (database "factos", user "app"): the connection was refused. Is PostgreSQL running there, and is DATABASE_URL right?` + "\n"
		if code != 1 || stderr != want {
			t.Errorf("worker %s: exit %d, stderr\n%q\nwant exit 1 and\n%q", strings.Join(args, " "), code, stderr, want)
		}
	}
}

// `worker run` says at once what it waits for, stays not ready, and gives
// up at STARTUP_TIMEOUT with exit code 1 instead of waiting forever.
func TestRunGivesUpAtStartupTimeout(t *testing.T) {
	t.Parallel()
	migrated := testdb.NewEmptyURL(t)
	if _, errOut, code := command(t, workerEnv(migrated, testtemporal.Address(), "x", freeAddr(t)), "migrate"); code != 0 {
		t.Fatal(errOut)
	}
	for _, tc := range []struct {
		name, dbURL, temporal string
		waitsFor, because     string
	}{
		{"database", "postgres://app:hunter2@" + freeAddr(t) + "/factos", testtemporal.Address(),
			"the database", "the connection was refused. Is PostgreSQL running there, and is DATABASE_URL right?"},
		{"migrations", testdb.NewEmptyURL(t), testtemporal.Address(),
			"migrations", "run `worker migrate`"},
		{"temporal", migrated, freeAddr(t),
			"Temporal", "Is the Temporal server running, and are TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE right?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startWorker(t, workerEnv(tc.dbURL, tc.temporal, testtemporal.UniqueID("giveup"), freeAddr(t), "STARTUP_TIMEOUT=6s", "LOG_FORMAT=json"))
			p.waitReady(http.StatusServiceUnavailable, 30*time.Second)
			var err error
			select {
			case err = <-p.exited:
			case <-time.After(60 * time.Second):
				t.Fatal("worker run still running 60s after a STARTUP_TIMEOUT of 6s")
			}
			if code := exitCode(err); code != 1 {
				t.Fatalf("exit code %d (%v), want 1", code, err)
			}
			waiting, gaveUp := false, false
			for _, l := range jsonLines(t, p.logs.String()) {
				msg, _ := l["msg"].(string)
				reason, _ := l["error"].(string)
				switch msg {
				case "waiting for " + tc.waitsFor:
					waiting = waiting || strings.Contains(reason, tc.because)
				case "giving up: not started within STARTUP_TIMEOUT; exiting":
					gaveUp = l["waiting_for"] == tc.waitsFor && strings.Contains(reason, tc.because) && l["startup_timeout"] == "6s"
				}
				if strings.Contains(reason, "hunter2") {
					t.Errorf("the log leaks the password: %v", l)
				}
			}
			if !waiting || !gaveUp {
				t.Errorf("logs do not say what the worker waited for (%v) or that it gave up (%v):\n%s", waiting, gaveUp, p.logs.String())
			}
		})
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		return ee.ExitCode()
	}
	return -1
}

// jsonLines parses a JSON log, skipping lines that are not JSON.
func jsonLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}
