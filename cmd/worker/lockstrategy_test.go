package main

import (
	"strings"
	"testing"
	"time"

	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testtemporal"
)

// The database's lock strategy: printed, changed only with the writers'
// stop confirmed, and a worker configured with another refuses to start,
// saying which variable, both values and how to proceed.
func TestLockStrategyCommandAndStartUpCheck(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewURL(t)
	env := workerEnv(dbURL, testtemporal.Address(), testtemporal.UniqueID("lock"), freeAddr(t), "TEMPORAL_ENABLED=false")
	// The store's line is applied; the ticket domain's own is not yet.
	if out, errOut, code := command(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %d %q %q", code, out, errOut)
	}

	if out, errOut, code := command(t, env, "lock-strategy"); code != 0 || !strings.Contains(out, "none recorded") {
		t.Fatalf("lock-strategy on a new database: %d %q %q", code, out, errOut)
	}
	// A keys worker records keys.
	p := startWorker(t, env)
	p.waitReady(200, time.Minute)
	p.stop(30 * time.Second)
	if out, _, code := command(t, env, "lock-strategy"); code != 0 || !strings.Contains(out, "lock strategy: keys") {
		t.Fatalf("lock-strategy after a keys worker ran: %d %q", code, out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"lock-strategy", "set", "table"}, 2, "--writers-stopped"},
		{[]string{"lock-strategy", "set", "serializable", "--writers-stopped"}, 2, "valid values are keys, table"},
		{[]string{"lock-strategy", "set"}, 2, "missing NAME"},
		{[]string{"lock-strategy", "-h"}, 0, "ONLY WITH EVERY WRITER STOPPED"},
		{[]string{"lock-strategy", "set", "table", "--writers-stopped"}, 0, "lock strategy: table (was keys)"},
	} {
		out, errOut, code := command(t, env, tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("worker %v: exit %d, output %q %q; want exit %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}

	// A keys worker on a table database refuses to start.
	p = startWorker(t, env)
	select {
	case err := <-p.exited:
		if err == nil {
			t.Fatal("the worker exited 0")
		}
	case <-time.After(time.Minute):
		t.Fatal("a worker with another lock strategy kept running")
	}
	logs := p.logs.String()
	for _, want := range []string{"refusing to start", "LOCK_STRATEGY", `\"keys\"`, `\"table\"`, "stop every writer"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the worker's refusal does not say %s:\n%s", want, logs)
		}
	}
}
