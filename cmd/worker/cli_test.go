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
	} {
		stdout, stderr, code := command(t, env, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("worker %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
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
