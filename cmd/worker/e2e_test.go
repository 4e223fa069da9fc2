package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/factos-go/factos/eventstore"
	"github.com/factos-go/factos/examples/tickets"
	"github.com/factos-go/factos/internal/devenv"
	"github.com/factos-go/factos/internal/testdb"
	"github.com/factos-go/factos/internal/testlog"
	"github.com/factos-go/factos/internal/testriver"
	"github.com/factos-go/factos/internal/testtemporal"
)

// These tests run the real worker binary as a child process against a
// real PostgreSQL and a real Temporal server.

var workerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "factos-worker-test-")
	if err != nil {
		panic(err)
	}
	workerBin = filepath.Join(dir, "worker")
	if out, err := exec.Command("go", "build", "-o", workerBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the worker: %v\n%s", err, out)
		os.Exit(2)
	}
	testdb.Main(m, testtemporal.Setup, func() (func(), error) { return func() { os.RemoveAll(dir) }, nil })
}

// proc is a running worker.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	logs   *testlog.Buffer
	exited chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func workerEnv(dbURL, temporalAddr, taskQueue, httpAddr string, extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"DATABASE_URL=" + dbURL, "TEMPORAL_ADDRESS=" + temporalAddr, "TEMPORAL_TASK_QUEUE=" + taskQueue,
		"HTTP_ADDR=" + httpAddr, "SHUTDOWN_TIMEOUT=10s", "LOG_LEVEL=debug",
	}, extra...)
}

// command runs the worker binary to completion.
func command(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(workerBin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

func startWorker(t *testing.T, env []string) *proc {
	t.Helper()
	p := &proc{t: t, logs: &testlog.Buffer{}, exited: make(chan error, 1)}
	for _, kv := range env {
		if a, ok := strings.CutPrefix(kv, "HTTP_ADDR="); ok {
			p.addr = a
		}
	}
	p.cmd = exec.Command(workerBin, "run")
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("worker logs:\n%s", p.logs.String())
		}
	})
	return p
}

func (p *proc) get(path string, auth ...string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+path, nil)
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitReady waits until /readyz answers want (200 or 503).
func (p *proc) waitReady(want int, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-p.exited:
			p.exited <- err
			p.t.Fatalf("worker exited: %v", err)
		default:
		}
		code, body := p.get("/readyz")
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("readyz is %d %s after %s, want %d", code, body, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and expects a clean exit.
func (p *proc) stop(timeout time.Duration) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			p.t.Fatalf("worker exited with %v after SIGTERM", err)
		}
	case <-time.After(timeout):
		p.t.Fatalf("worker did not exit within %s of SIGTERM", timeout)
	}
}

func demo(t *testing.T, env []string, args ...string) DemoSummary {
	t.Helper()
	out, errOut, code := command(t, env, append([]string{"demo", "tickets"}, args...)...)
	var sum DemoSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("demo output %q (%s): %v", out, errOut, err)
	}
	if code != 0 || !sum.OK {
		t.Fatalf("demo failed (exit %d): %+v\n%s", code, sum, errOut)
	}
	return sum
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	dbURL := testdb.NewEmptyURL(t)
	queue := testtemporal.UniqueID("e2e")
	env := workerEnv(dbURL, testtemporal.Address(), queue, freeAddr(t),
		"RIVERUI_ENABLED=true", "RIVERUI_USERNAME=admin", "RIVERUI_PASSWORD=pa55-e2e", "LOG_FORMAT=json")

	// Not migrated yet: the worker runs but refuses work.
	p := startWorker(t, env)
	p.waitReady(http.StatusServiceUnavailable, 30*time.Second)
	if code, _ := p.get("/healthz"); code != http.StatusOK {
		t.Fatalf("healthz %d while waiting for migrations", code)
	}
	// The application's line is pending with the store's, then applied
	// and listed with them.
	if out, _, code := command(t, env, "migrate", "status"); code != 3 || !strings.Contains(out, "tickets/1") || !strings.Contains(out, "factos/1") {
		t.Fatalf("migrate status before migrate: exit %d, want 3 listing factos/1 and tickets/1 pending:\n%s", code, out)
	}
	if out, errOut, code := command(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %d %s %s", code, out, errOut)
	}
	if out, _, code := command(t, env, "migrate", "status"); code != 0 || !strings.Contains(out, "current") ||
		!regexp.MustCompile(`(?m)^tickets\s+1\s+00001_tickets\.sql\s+true$`).MatchString(out) {
		t.Fatalf("migrate status: %d %s", code, out)
	}
	p.waitReady(http.StatusOK, 60*time.Second)

	sum := demo(t, env, "-capacity", "20", "-buyers", "60", "-concurrency", "12", "-wait", "90s")
	if sum.Accepted != 20 || sum.SoldOut != 40 || sum.Mode != "temporal" {
		t.Fatalf("demo %+v", sum)
	}

	// Exactly capacity tickets in the event table.
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var sold int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM factos_events WHERE type = 'TicketSold' AND $1 = ANY(tags)`, "concert:"+sum.Concert).Scan(&sold); err != nil {
		t.Fatal(err)
	}
	if sold != 20 {
		t.Fatalf("%d tickets in the event table, want 20", sold)
	}

	// Every effect completed, as River UI's API shows it; and it is
	// protected.
	if code, _ := p.get("/riverui/api/jobs?state=completed"); code != http.StatusUnauthorized {
		t.Fatalf("River UI without credentials: %d", code)
	}
	code, body := p.get("/riverui/api/jobs?state=completed&kinds=factos.effect.announce_ticket_sale&limit=1000", "admin", "pa55-e2e")
	if code != http.StatusOK {
		t.Fatalf("River UI jobs: %d %s", code, body)
	}
	var list struct {
		Data []struct {
			Args string `json:"args"` // River UI sends the args as a JSON string
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	completed := 0
	for _, j := range list.Data {
		var args struct {
			Args struct {
				ConcertID string `json:"concert_id"`
			} `json:"args"`
		}
		if err := json.Unmarshal([]byte(j.Args), &args); err != nil {
			t.Fatal(err)
		}
		if args.Args.ConcertID == sum.Concert {
			completed++
		}
	}
	if completed != 20 {
		t.Fatalf("River UI lists %d completed announce effects for the concert, want 20", completed)
	}

	checkConcertSales(t, env, dbURL)
	checkEffectsCommand(t, env)
	checkReactorsCommand(t, env)

	if code, body := p.get("/readyz"); code != http.StatusOK || !strings.Contains(body, `"temporal":"ok"`) {
		t.Fatalf("readyz %d %s", code, body)
	}
	code, metrics := p.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics %d", code)
	}
	for _, m := range []string{
		`factos_dispatches_total{op="dispatch",outcome="committed",strategy="keys"}`,
		`factos_dispatches_total{op="dispatch",outcome="rejected",strategy="keys"}`,
		`factos_dispatch_duration_seconds_bucket`,
		`factos_river_jobs{kind="factos.effect.announce_ticket_sale",state="completed"}`,
		`factos_reaction_lag_seconds_count{reactor="announce_sales"}`,
		`factos_effect_duration_seconds_count{kind="announce_ticket_sale",outcome="completed"}`,
		`factos_pool_connections{state="total"}`,
		`factos_projection_lag_events{projection="concert_sales"} 0`,
		`factos_projection_lag_seconds{projection="concert_sales"} 0`,
		`factos_projection_leader{projection="concert_sales"} 1`,
		`factos_projection_events_total{projection="concert_sales"}`,
	} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	// The Temporal SDK's own metrics, in the same registry: the worker ran
	// workflows, and its client made requests.
	for _, prefix := range []string{"temporal_workflow_", "temporal_request"} {
		if !strings.Contains(metrics, "\n"+prefix) {
			t.Errorf("/metrics has no Temporal SDK series %s*", prefix)
		}
	}

	p.stop(30 * time.Second)
	logs := p.logs.String()
	for _, secret := range []string{"pa55-e2e"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain the secret %q", secret)
		}
	}
	if !strings.Contains(logs, `"msg":"workers stopped"`) || !strings.Contains(logs, `"msg":"database pool closed"`) {
		t.Errorf("no graceful stop in the logs")
	}
	// 40 buyers found the concert sold out (the summary says so): an
	// outcome, logged at debug level at most, never as an error. The
	// purchases run their command as a local activity, whose failures the
	// SDK does not log (a regular activity's rejection is logged at debug
	// level, as a benign error); any line about them must be a debug line.
	for _, l := range jsonLines(t, logs) {
		line, _ := json.Marshal(l)
		if strings.Contains(string(line), "sold out") && l["level"] != "DEBUG" {
			t.Errorf("a sold-out outcome logged at %v: %s", l["level"], line)
		}
	}
}

// checkConcertSales checks the tickets domain's projection after the
// demo: caught up, and equal to the fold of the log; then again after a
// rebuild from the command line while the worker runs it.
func checkConcertSales(t *testing.T, env []string, dbURL string) {
	t.Helper()
	out, errOut, code := command(t, env, "projections", "status", "-wait", "60s", "-json")
	if code != 0 {
		t.Fatalf("projections status: exit %d\n%s\n%s", code, out, errOut)
	}
	var sts []struct {
		Name      string `json:"name"`
		State     string `json:"state"`
		Position  int64  `json:"position"`
		Head      int64  `json:"head"`
		LagEvents int64  `json:"lag_events"`
		Running   bool   `json:"running"`
	}
	if err := json.Unmarshal([]byte(out), &sts); err != nil {
		t.Fatalf("projections status -json: %v\n%s", err, out)
	}
	if len(sts) != 1 || sts[0].Name != tickets.ProjectionConcertSales || sts[0].State != "ok" || !sts[0].Running || sts[0].LagEvents != 0 || sts[0].Position != sts[0].Head {
		t.Fatalf("projections status: %+v", sts)
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store, err := eventstore.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	equalsFold := func(when string) {
		t.Helper()
		fold, err := tickets.ConcertSalesFromLog(ctx, store, tickets.NewCodec())
		if err != nil {
			t.Fatal(err)
		}
		view, err := tickets.ReadConcertSales(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(view, fold) || len(view) == 0 {
			t.Fatalf("%s: the concert_sales view differs from the fold of the log:\nview %v\nfold %v", when, view, fold)
		}
	}
	equalsFold("after the demo")

	if out, errOut, code := command(t, env, "projections", "rebuild", tickets.ProjectionConcertSales, "-reason", "e2e"); code != 0 || !strings.Contains(out, "rebuilt from 0") {
		t.Fatalf("projections rebuild: exit %d\n%s\n%s", code, out, errOut)
	}
	equalsFold("after a rebuild")
	if _, errOut, code := command(t, env, "projections", "skip", tickets.ProjectionConcertSales, "1"); code != 1 || !strings.Contains(errOut, "already applied") {
		t.Fatalf("skipping an applied position: exit %d, %s", code, errOut)
	}
	if out, _, code := command(t, env, "projections", "status"); code != 0 || !strings.Contains(out, "last reset to 0 by") || !strings.Contains(out, "(e2e)") {
		t.Fatalf("projections status: exit %d\n%s", code, out)
	}
	out, _, _ = command(t, env, "spec")
	if !strings.Contains(out, `"name": "concert_sales"`) || !strings.Contains(out, `"name": "demo tickets"`) {
		t.Fatalf("worker spec does not list the projection and the demo command:\n%s", out)
	}
}

// checkReactorsCommand operates the ticket domain's reactors from the
// command line while the worker runs: after the demo the announcing
// reactor has reacted to every sale; a reset forgets its reactions and
// replays them, and the running worker reacts again.
// checkEffectsCommand runs `worker effects` against the running worker's
// database: the announcements (ordered per buyer) are counted and listed
// with their ordering keys, and a done one can be neither retried nor
// skipped.
func checkEffectsCommand(t *testing.T, env []string) {
	t.Helper()
	out, errOut, code := command(t, env, "effects", "status", "-json")
	var st struct {
		Jobs []struct {
			Kind  string `json:"kind"`
			State string `json:"state"`
			Jobs  int64  `json:"jobs"`
		} `json:"jobs"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("effects status: exit %d\n%s\n%s", code, out, errOut)
	}
	completed := int64(0)
	for _, j := range st.Jobs {
		if j.Kind == tickets.EffectAnnounceTicketSale && j.State == "completed" {
			completed = j.Jobs
		}
	}
	if completed < 20 {
		t.Fatalf("effects status: %d completed announcements, want 20 or more:\n%s", completed, out)
	}
	out, errOut, code = command(t, env, "effects", "list", "-kind", tickets.EffectAnnounceTicketSale, "-state", "done", "-limit", "5", "-json")
	var list []struct {
		JobID       int64  `json:"job_id"`
		EffectKey   string `json:"effect_key"`
		OrderingKey string `json:"ordering_key"`
		Sequence    string `json:"sequence"`
		JobState    string `json:"job_state"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 5 {
		t.Fatalf("effects list: exit %d, want 5 effects\n%s\n%s", code, out, errOut)
	}
	for _, e := range list {
		if !strings.HasPrefix(e.OrderingKey, "buyer:") || e.Sequence != "done" || e.JobState != "completed" || e.JobID == 0 {
			t.Fatalf("effects list: %+v", e)
		}
	}
	if _, errOut, code := command(t, env, "effects", "retry", list[0].EffectKey); code != 3 || !strings.Contains(errOut, "it is done") {
		t.Fatalf("retry of a done effect: exit %d, %s", code, errOut)
	}
	if _, errOut, code := command(t, env, "effects", "skip", "-id", fmt.Sprint(list[1].JobID)); code != 3 || !strings.Contains(errOut, "it is done") {
		t.Fatalf("skip of a done effect by its job: exit %d, %s", code, errOut)
	}
	if _, errOut, code := command(t, env, "effects", "retry", "-id", "999999999"); code != 1 || !strings.Contains(errOut, "no effect") {
		t.Fatalf("retry of an unknown job: exit %d, %s", code, errOut)
	}
}

func checkReactorsCommand(t *testing.T, env []string) {
	t.Helper()
	type status struct {
		Name      string `json:"name"`
		Position  int64  `json:"position"`
		Reacted   int64  `json:"reacted"`
		Unreacted int    `json:"unreacted"`
	}
	announce := func() status {
		t.Helper()
		out, errOut, code := command(t, env, "reactors", "status", "-json")
		var sts []status
		if code != 0 || json.Unmarshal([]byte(out), &sts) != nil {
			t.Fatalf("reactors status: exit %d\n%s\n%s", code, out, errOut)
		}
		for _, st := range sts {
			if st.Name == tickets.ReactorAnnounceSales {
				return st
			}
		}
		t.Fatalf("reactors status does not list %s:\n%s", tickets.ReactorAnnounceSales, out)
		return status{}
	}
	var before status
	testriver.WaitFor(t, time.Minute, "the announcing reactor to catch up", func() (bool, error) {
		before = announce()
		return before.Reacted > 0 && before.Unreacted == 0, nil
	})
	out, errOut, code := command(t, env, "reactors", "reset", tickets.ReactorAnnounceSales)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("forgot %d reactions", before.Reacted)) || !strings.Contains(out, fmt.Sprintf("enqueued %d reactions", before.Reacted)) {
		t.Fatalf("reactors reset: exit %d\n%s\n%s", code, out, errOut)
	}
	testriver.WaitFor(t, time.Minute, "the reset reactor to react again", func() (bool, error) {
		st := announce()
		return st.Reacted == before.Reacted && st.Position == before.Position, nil
	})
	if out, _, code := command(t, env, "reactors", "replay", tickets.ReactorAnnounceSales); code != 0 || !strings.Contains(out, "enqueued 0 reactions") {
		t.Fatalf("replay of a caught-up reactor: exit %d\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"reactors", "reset", "nope"}, 1, "unknown reactor"},
		{[]string{"reactors", "replay"}, 2, "wrong arguments"},
		{[]string{"reactors", "bogus"}, 2, "wrong arguments"},
		{[]string{"reactors", "status"}, 0, "UNREACTED"},
	} {
		out, errOut, code := command(t, env, tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("worker %v: exit %d, %q %q; want exit %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}

func TestBadConfigurationFailsFast(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		name string
	}{
		{[]string{"PATH=" + os.Getenv("PATH")}, "DATABASE_URL"},
		{[]string{"DATABASE_URL=postgres://app:hunter2@127.0.0.1:1/x", "HTTP_ADDR=nope"}, "HTTP_ADDR"},
		{[]string{"DATABASE_URL=postgres://app:hunter2@127.0.0.1:1/x", "LOCK_STRATEGY=global"}, "LOCK_STRATEGY"},
		{[]string{"DATABASE_URL=postgres://app:hunter2@127.0.0.1:1/x", "RIVERUI_ENABLED=true"}, "RIVERUI_USERNAME"},
	} {
		for _, args := range [][]string{{"run"}, {"migrate"}, {"demo", "tickets"}} {
			_, stderr, code := command(t, tc.env, args...)
			if code != 2 || !strings.Contains(stderr, tc.name) {
				t.Errorf("%v with %v: exit %d, stderr %q; want exit 2 naming %s", args, tc.env, code, stderr, tc.name)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Errorf("%v: stderr leaks the database password: %s", args, stderr)
			}
		}
	}
}

// The worker keeps running through a PostgreSQL restart: it reports itself
// not ready while the database is down and works again when it is back.
func TestRecoversFromPostgresRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := devenv.StartPostgres(ctx, devenv.PostgresOpts{MaxConnections: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Destroy() })
	env := workerEnv(pg.URL(), testtemporal.Address(), testtemporal.UniqueID("pgrestart"), freeAddr(t))
	if _, errOut, code := command(t, env, "migrate"); code != 0 {
		t.Fatal(errOut)
	}
	p := startWorker(t, env)
	p.waitReady(http.StatusOK, 60*time.Second)
	demo(t, env, "-direct", "-capacity", "5", "-buyers", "10", "-wait", "60s")

	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	p.waitReady(http.StatusServiceUnavailable, 30*time.Second)
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p.waitReady(http.StatusOK, 60*time.Second)
	demo(t, env, "-direct", "-capacity", "5", "-buyers", "10", "-wait", "60s")
	demo(t, env, "-capacity", "3", "-buyers", "6", "-wait", "60s")
	p.stop(30 * time.Second)
}

// The worker keeps running through a Temporal restart and serves workflows
// again when the server is back.
func TestRecoversFromTemporalRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tmp, err := devenv.StartTemporal(ctx, devenv.TemporalOpts{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tmp.Destroy)
	env := workerEnv(testdb.NewEmptyURL(t), tmp.Address(), "restart", freeAddr(t))
	if _, errOut, code := command(t, env, "migrate"); code != 0 {
		t.Fatal(errOut)
	}
	p := startWorker(t, env)
	p.waitReady(http.StatusOK, 60*time.Second)
	demo(t, env, "-capacity", "3", "-buyers", "6", "-wait", "60s")

	if err := tmp.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	demo(t, env, "-capacity", "3", "-buyers", "6", "-wait", "60s")
	select {
	case err := <-p.exited:
		t.Fatalf("worker exited during the Temporal restart: %v", err)
	default:
	}
	p.stop(30 * time.Second)
}
