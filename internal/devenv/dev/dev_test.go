package main

import (
	"bufio"
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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/factos-go/factos/internal/devenv"
)

// These tests run `make dev` as a person would, through a pipe, and stop
// it the ways a session ends: ^C (the pipe's reader dies with it), SIGTERM
// to make, a crashed worker. Each time nothing it started may be left: no
// process, no listening port, no temporary directory; only the worker's
// log, whose path it printed.

// TestMain builds the dev tool where `make dev` puts it, once: the tests
// run make dev side by side, and each would otherwise rewrite the binary
// another has just started.
func TestMain(m *testing.M) {
	build := exec.Command("go", "build", "-o", "bin/factos-dev", "./internal/devenv/dev")
	build.Dir = "../../.."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the dev tool: %v\n%s", err, out)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// A small demo, enough for both UIs to show something.
const demoBuyers, demoSeats = 12, 4

// run is one `make dev` under test.
type run struct {
	t      *testing.T
	tmp    string // its TMPDIR: everything it creates goes there
	cmd    *exec.Cmd
	out    *os.File // the read end of its stdout
	stderr *bytes.Buffer
	exited chan struct{}

	mu    sync.Mutex
	lines []string
	addrs map[string]string // from the summary it prints: "River UI" → URL

	listening []string // the host:port of every server it started
}

// startMakeDev starts `make dev` and waits until it is ready.
func startMakeDev(t *testing.T) *run {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	// Its own TMPDIR, readable by the postgres user that runs the server
	// when the tests run as root.
	tmp, err := os.MkdirTemp("", "factos-devtest-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })

	r := &run{t: t, tmp: tmp, stderr: &bytes.Buffer{}, exited: make(chan struct{}), addrs: map[string]string{}}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "DATABASE_URL", "TEMPORAL_ADDRESS", "HTTP_ADDR", "TMPDIR", "MAKEFLAGS", "MFLAGS", "MAKELEVEL":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "TMPDIR="+tmp, "TEMPORAL_ADDRESS="+freeLoopback(t), "HTTP_ADDR="+freeLoopback(t))

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.out = pr
	r.cmd = exec.Command("make", "--no-print-directory", "dev", fmt.Sprintf("DEV_FLAGS=-buyers %d -capacity %d", demoBuyers, demoSeats))
	r.cmd.Dir, r.cmd.Env = root, env
	r.cmd.Stdout, r.cmd.Stderr = pw, r.stderr
	// A process group of its own, as a shell gives a job: ^C at a terminal
	// goes to the whole group.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default: // a failed test: take everything down
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.exited
		}
		if t.Failed() {
			t.Logf("make dev printed:\n%s\nstderr:\n%s", r.output(), r.stderr)
		}
	})
	go r.read()
	r.waitFor("Press ^C to stop and clean up.", 10*time.Minute)
	r.listening = r.ports()
	return r
}

var summaryLine = regexp.MustCompile(`^([A-Za-z ]+):\s+(\S+)`)

func (r *run) read() {
	sc := bufio.NewScanner(r.out)
	for sc.Scan() {
		line := sc.Text()
		r.mu.Lock()
		r.lines = append(r.lines, line)
		if m := summaryLine.FindStringSubmatch(line); m != nil {
			r.addrs[m[1]] = m[2]
		}
		if _, pw, ok := strings.Cut(line, "user admin, password "); ok {
			r.addrs["password"], _, _ = strings.Cut(pw, ":")
		}
		r.mu.Unlock()
	}
}

func (r *run) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

func (r *run) addr(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addrs[name]
}

// waitFor waits until a line contains s.
func (r *run) waitFor(s string, timeout time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(r.output(), s) {
		select {
		case <-r.exited:
			r.t.Fatalf("make dev exited before printing %q", s)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("make dev did not print %q within %s", s, timeout)
		}
	}
}

// wait waits for make to exit and returns how.
func (r *run) wait(timeout time.Duration) *os.ProcessState {
	r.t.Helper()
	select {
	case <-r.exited:
	case <-time.After(timeout):
		r.t.Fatalf("make dev still runs %s after it was told to stop", timeout)
	}
	return r.cmd.ProcessState
}

// ports are the listening addresses make dev printed.
func (r *run) ports() []string {
	var out []string
	for _, name := range []string{"River UI", "Temporal UI", "Temporal", "PostgreSQL"} {
		raw := r.addr(name)
		if !strings.Contains(raw, "://") {
			raw = "tcp://" + raw
		}
		host := hostOf(raw)
		if host == "" {
			r.t.Fatalf("no address for %s in:\n%s", name, r.output())
		}
		out = append(out, host)
	}
	return out
}

func hostOf(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = rest[at+1:]
	}
	host, _, _ := strings.Cut(rest, "/")
	return host
}

// waitCleanStop waits for make to exit after a stop it was asked for. GNU
// make itself dies of the SIGINT or SIGTERM it received, as it should,
// once its child has exited; it reports a child that failed or was killed
// ("make: *** [Makefile:…: dev] Error 1").
func (r *run) waitCleanStop() {
	r.t.Helper()
	st := r.wait(2 * time.Minute)
	if strings.Contains(r.stderr.String(), "make: ***") {
		r.t.Errorf("make reports a failure: %s (%v)", r.stderr, st)
	}
}

// checkNothingLeft checks that no process, port or directory of the run
// is left, and that the worker's log is.
func (r *run) checkNothingLeft() {
	r.t.Helper()
	if procs := processesUsing(r.tmp); len(procs) > 0 {
		r.t.Errorf("processes left:\n%s", strings.Join(procs, "\n"))
	}
	for _, p := range r.listening {
		if c, err := net.DialTimeout("tcp", p, time.Second); err == nil {
			_ = c.Close()
			r.t.Errorf("something still listens on %s", p)
		}
	}
	entries, err := os.ReadDir(r.tmp)
	if err != nil {
		r.t.Fatal(err)
	}
	logPath := r.addr("Worker log")
	for _, e := range entries {
		if filepath.Join(r.tmp, e.Name()) != logPath {
			r.t.Errorf("left in TMPDIR: %s", e.Name())
		}
	}
	if st, err := os.Stat(logPath); err != nil || st.Size() == 0 {
		r.t.Errorf("the worker's log %q is not kept: %v", logPath, err)
	}
}

// processesUsing lists the processes whose command line or environment
// mentions dir: make dev's TMPDIR reaches every process it starts, and the
// servers' command lines name their directories in it.
func processesUsing(dir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if strings.Trim(e.Name(), "0123456789") != "" {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if bytes.Contains(cmdline, []byte(dir)) || bytes.Contains(environ, []byte("TMPDIR="+dir+"\x00")) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	addr, err := devenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// ^C while the output goes through a pipe (`make dev 2>&1 | tee dev.log`):
// the terminal's SIGINT reaches make, make dev and tee at once; tee dies
// and every line make dev prints while it cleans up goes nowhere.
func TestMakeDevInterruptedThroughAPipe(t *testing.T) {
	t.Parallel()
	r := startMakeDev(t)
	checkUIs(t, r)

	_ = r.out.Close()
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	r.waitCleanStop()
	r.checkNothingLeft()
}

// The reader of make dev's output goes away without a signal (`make dev
// | head`, a closed ssh session's pipe): make dev notices, cleans up and
// exits 0, and so does make.
func TestMakeDevStopsWhenItsOutputCloses(t *testing.T) {
	t.Parallel()
	r := startMakeDev(t)
	_ = r.out.Close()
	if st := r.wait(2 * time.Minute); !st.Success() || r.stderr.Len() != 0 {
		t.Errorf("make exited %v, stderr %q; want 0 and nothing", st, r.stderr)
	}
	r.checkNothingLeft()
}

// SIGTERM to make (a supervisor stopping the job) reaches make dev, which
// says what it stops, and cleans up before make returns.
func TestMakeDevTerminated(t *testing.T) {
	t.Parallel()
	r := startMakeDev(t)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.waitCleanStop()
	out := r.output()
	for _, want := range []string{"==> stopping (terminated)", "==> stopping the worker", "==> stopping Temporal", "==> removing PostgreSQL",
		"==> cleaned up; the worker's log is kept: " + r.addr("Worker log")} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	r.checkNothingLeft()
}

// A worker that dies ends the session: make dev says so with the end of
// the worker's log, cleans up, and fails.
func TestMakeDevStopsWhenTheWorkerDies(t *testing.T) {
	t.Parallel()
	r := startMakeDev(t)
	var worker []string
	for _, p := range processesUsing(r.tmp) {
		if strings.HasSuffix(p, "/bin/factos-dev-worker run ") {
			worker = append(worker, p)
		}
	}
	if len(worker) != 1 {
		t.Fatalf("want one worker process, found %q", worker)
	}
	head, _, _ := strings.Cut(worker[0], ":")
	pid, err := strconv.Atoi(head)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := r.wait(2 * time.Minute)
	if st.ExitCode() == 0 || !strings.Contains(r.stderr.String(), "make dev: the worker exited unexpectedly") ||
		!strings.Contains(r.stderr.String(), "Error 1") {
		t.Errorf("exit %v, stderr %q: want a failure that names the worker", st, r.stderr)
	}
	if out := r.output(); !strings.Contains(out, "==> failed: the worker exited unexpectedly; the end of its log") {
		t.Errorf("output does not say the worker died")
	}
	r.checkNothingLeft()
}

// checkUIs checks both UIs answer: River UI asks the browser for
// credentials and shows the demo's jobs with them; Temporal UI lists the
// demo's workflows.
func checkUIs(t *testing.T, r *run) {
	t.Helper()
	riverUI, temporalUI, password := r.addr("River UI"), r.addr("Temporal UI"), r.addr("password")
	resp, err := http.Get(riverUI)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("River UI without credentials: %s %q; want 401 with a Basic challenge, so the browser asks", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	req, _ := http.NewRequest(http.MethodGet, strings.TrimSuffix(riverUI, "/")+"/api/jobs?state=completed&limit=100", nil)
	req.SetBasicAuth("admin", password)
	if body := get(t, req); !strings.Contains(body, "factos.effect.announce_ticket_sale") {
		t.Errorf("River UI lists no completed sale announcement: %.500s", body)
	}

	if err := devenv.CheckHTTP(context.Background(), temporalUI); err != nil {
		t.Errorf("Temporal UI: %v", err)
	}
	api := strings.Replace(temporalUI, "/namespaces/", "/api/v1/namespaces/", 1)
	req, _ = http.NewRequest(http.MethodGet, api, nil)
	var list struct {
		Executions []struct {
			Type struct{ Name string } `json:"type"`
		} `json:"executions"`
	}
	if err := json.Unmarshal([]byte(get(t, req)), &list); err != nil {
		t.Fatal(err)
	}
	buys := 0
	for _, e := range list.Executions {
		if e.Type.Name == "BuyTicketWorkflow" {
			buys++
		}
	}
	if buys != demoBuyers {
		t.Errorf("Temporal UI lists %d BuyTicketWorkflow runs, want the demo's %d", buys, demoBuyers)
	}
}

func get(t *testing.T, req *http.Request) string {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v %.300s", req.URL, resp.Status, err, body)
	}
	return string(body)
}
