// Command dev is `make dev`: it starts what the worker needs (a throwaway
// PostgreSQL unless DATABASE_URL is set, a Temporal dev server with its Web
// UI unless one answers at TEMPORAL_ADDRESS), migrates, runs the worker
// with River UI, runs the ticket demo through Temporal, prints where both
// UIs are, and keeps everything running until it is told to stop.
//
// It stops, and removes everything it started (the worker, Temporal,
// PostgreSQL, their temporary directories), on ^C, SIGTERM or SIGHUP, when
// its output's reader goes away (`make dev | tee dev.log`, then ^C), or
// when one of the processes it started dies; a second signal hurries the
// worker's stop. A stop asked for ends with exit code 0, a failure with 1.
// The worker's log is kept, and its path printed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/internal/devenv"
)

type options struct {
	exitAfterDemo bool
	screenshots   string
	capacity      int
	buyers        int
}

func main() {
	var o options
	flag.BoolVar(&o.exitAfterDemo, "exit-after-demo", false, "stop and clean up once the demo has run (for CI)")
	flag.StringVar(&o.screenshots, "screenshots", "", "after the demo, save screenshots of River UI and Temporal UI in this `directory` (needs chromium), then stop")
	flag.IntVar(&o.capacity, "capacity", 100, "seats for sale in the demo")
	flag.IntVar(&o.buyers, "buyers", 300, "buyers racing for them")
	flag.Parse()

	// With stdout a pipe whose reader is gone, a write must fail with
	// EPIPE and leave the cleanup to run, instead of killing the process
	// with SIGPIPE before it has removed anything.
	signal.Ignore(syscall.SIGPIPE)
	os.Exit(newSession(newConsole(os.Stdout)).main(o))
}

// session is one run of make dev.
type session struct {
	con *console

	ctx  context.Context // cancelled, with the reason as its cause, when the session must end
	stop context.CancelCauseFunc

	hurry     chan struct{} // closed on a second signal: stop children at once
	hurryOnce sync.Once

	cleanups []cleanup // run last first
	logPath  string    // the worker's log, kept
}

type cleanup struct {
	say string // printed before it runs; "" for silent ones
	run func()
}

// Why a session ended, when it did not simply finish.
var (
	errFinished     = errors.New("finished")
	errStdoutClosed = errors.New("the output's reader is gone")
)

type signalled struct{ sig os.Signal }

func (s signalled) Error() string { return "received " + s.sig.String() }

// crashed says which process died unexpectedly, with the end of its log.
type crashed struct {
	what, log, tail string
}

func (c *crashed) Error() string {
	msg := c.what + " exited unexpectedly"
	if c.log != "" {
		msg += "; the end of its log (" + c.log + "):\n" + c.tail
	}
	return msg
}

func newSession(con *console) *session {
	ctx, stop := context.WithCancelCause(context.Background())
	return &session{con: con, ctx: ctx, stop: stop, hurry: make(chan struct{})}
}

func (s *session) main(o options) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go s.onSignals(sigs)
	s.con.watch(func() { s.stop(errStdoutClosed) })

	err := s.run(o)
	cause := context.Cause(s.ctx)
	s.stop(errFinished)
	var crash *crashed
	switch {
	case errors.As(cause, &crash):
		err = crash
	case cause != nil:
		err = nil // a stop asked for (signal, closed output): not a failure
	}
	if err != nil {
		s.con.say("failed: %v", err)
	}
	s.cleanup()
	if s.logPath != "" {
		s.con.say("cleaned up; the worker's log is kept: %s", s.logPath)
	} else {
		s.con.say("cleaned up")
	}
	if err != nil {
		// Also on stderr, in case stdout is a closed pipe or a file.
		fmt.Fprintln(os.Stderr, "make dev:", err)
		return 1
	}
	return 0
}

func (s *session) onSignals(sigs chan os.Signal) {
	first := true
	for sig := range sigs {
		if first {
			first = false
			s.con.say("stopping (%v); cleaning up — ^C again to stop the worker at once", sig)
			s.stop(signalled{sig})
			continue
		}
		s.hurryOnce.Do(func() { close(s.hurry) })
	}
}

// later registers a cleanup step; they run last first.
func (s *session) later(say string, run func()) {
	s.cleanups = append(s.cleanups, cleanup{say: say, run: run})
}

func (s *session) cleanup() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		c := s.cleanups[i]
		if c.say != "" {
			s.con.say("%s", c.say)
		}
		c.run()
	}
}

// watch ends the session with a crash if exited closes while the session
// runs. Stops the session asks for come after its context ends, so they
// never count as crashes.
func (s *session) watch(what string, exited <-chan struct{}, logFile string) {
	go func() {
		select {
		case <-exited:
			if s.ctx.Err() == nil {
				log, _ := os.ReadFile(logFile)
				s.stop(&crashed{what: what, log: logFile, tail: lastLines(string(log), 15)})
			}
		case <-s.ctx.Done():
		}
	}()
}

// slow runs a step that can take minutes, saying every 30s that it still
// runs, and how long it took.
func (s *session) slow(what string, f func(ctx context.Context) error) error {
	start := time.Now()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.con.detail("still %s (%s)", what, since(start))
			}
		}
	}()
	err := f(s.ctx)
	close(done)
	if err == nil {
		s.con.detail("done in %s", since(start))
	}
	return err
}

func (s *session) run(o options) error {
	env := []string{"LOG_FORMAT=text", "SHUTDOWN_TIMEOUT=10s"}

	// PostgreSQL.
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		s.con.say("starting PostgreSQL (no DATABASE_URL given: a throwaway cluster)")
		start := time.Now()
		pg, err := devenv.StartPostgres(s.ctx, devenv.PostgresOpts{})
		if err != nil {
			return fmt.Errorf("error starting PostgreSQL: %w", err)
		}
		s.later("removing PostgreSQL", func() { _ = pg.Destroy() })
		if exited, err := pg.Exited(); err == nil {
			s.watch("PostgreSQL", exited, pg.LogFile())
		} else {
			s.con.detail("(cannot watch the server: %v)", err)
		}
		if err := createDatabase(s.ctx, pg.URL(), "factos"); err != nil {
			return err
		}
		dbURL = pg.DatabaseURL("factos")
		s.con.detail("ready at 127.0.0.1:%d in %s", pg.Port(), since(start))
	}

	// Temporal.
	temporalAddr := os.Getenv("TEMPORAL_ADDRESS")
	if temporalAddr == "" {
		temporalAddr = "127.0.0.1:7233"
	}
	temporalUI := ""
	if devenv.CheckTemporal(s.ctx, temporalAddr, "default") == nil {
		s.con.say("using the Temporal server that answers at %s", temporalAddr)
		temporalUI = guessTemporalUI(s.ctx, temporalAddr)
	} else {
		bin, built, err := devenv.TemporalBinaryPath()
		if err != nil {
			return err
		}
		if !built {
			s.con.say("building the Temporal CLI %s into %s (the first run only; it takes several minutes)", devenv.TemporalVersion, filepath.Dir(bin))
			if err := s.slow("building the Temporal CLI", func(ctx context.Context) error { return devenv.BuildTemporalBinary(ctx, bin) }); err != nil {
				return err
			}
		}
		s.con.say("starting a Temporal dev server with its Web UI (none answers at %s)", temporalAddr)
		start := time.Now()
		opts := devenv.TemporalOpts{Bin: bin, UI: true}
		if host, port, err := net.SplitHostPort(temporalAddr); err == nil && host == "127.0.0.1" && free(temporalAddr) {
			// The usual ports, 7233 and 8233 for the UI, when free.
			opts.Port, _ = strconv.Atoi(port)
			if ui := net.JoinHostPort(host, strconv.Itoa(opts.Port+1000)); free(ui) {
				opts.UIPort = opts.Port + 1000
			}
		}
		tmp, err := devenv.StartTemporal(s.ctx, opts)
		if err != nil {
			return fmt.Errorf("error starting the Temporal dev server: %w", err)
		}
		s.later("stopping Temporal", tmp.Destroy)
		s.watch("the Temporal dev server", tmp.Exited(), tmp.LogFile())
		temporalAddr, temporalUI = tmp.Address(), tmp.UIURL()
		s.con.detail("ready at %s, Web UI at %s, in %s", temporalAddr, temporalUI, since(start))
	}
	env = append(env, "DATABASE_URL="+dbURL, "TEMPORAL_ADDRESS="+temporalAddr)

	// The worker binary, next to this one (bin/ of the checkout, see the
	// Makefile): go build relinks a binary only when its inputs changed,
	// so a second run takes seconds, and each checkout has its own.
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	bin := filepath.Join(filepath.Dir(exe), "factos-dev-worker")
	s.con.say("building the worker (go build -o %s ./cmd/worker)", bin)
	if err := s.slow("building the worker", func(ctx context.Context) error {
		// Two sessions in one checkout build one after the other: a
		// binary being written cannot be run.
		unlock, err := devenv.LockFile(bin + ".lock")
		if err != nil {
			return err
		}
		defer unlock()
		if out, err := devenv.RunGo(ctx, nil, "build", "-o", bin, "./cmd/worker"); err != nil {
			return fmt.Errorf("go build ./cmd/worker: %w\n%s", err, out)
		}
		return nil
	}); err != nil {
		return err
	}

	// Its log, kept after the session.
	logf, err := os.CreateTemp("", "factos-dev-worker-"+time.Now().Format("20060102-150405")+"-*.log")
	if err != nil {
		return err
	}
	logPath := logf.Name()
	s.logPath = logPath
	s.later("", func() { _ = logf.Close() })

	httpAddr := os.Getenv("HTTP_ADDR")
	if httpAddr == "" {
		httpAddr = "127.0.0.1:8080"
		if !free(httpAddr) {
			if httpAddr, err = devenv.FreeAddr(); err != nil {
				return err
			}
		}
	}
	var pw [6]byte
	_, _ = rand.Read(pw[:])
	password := hex.EncodeToString(pw[:])
	env = append(env, "HTTP_ADDR="+httpAddr,
		"RIVERUI_ENABLED=true", "RIVERUI_USERNAME=admin", "RIVERUI_PASSWORD="+password)

	s.con.say("migrating (worker migrate)")
	if err := s.runWorker(bin, env, logf, nil, "migrate"); err != nil {
		return fmt.Errorf("worker migrate: %w; the end of its log (%s):\n%s", err, logPath, tailOf(logPath))
	}

	s.con.say("starting the worker (worker run); its log: %s", logPath)
	start := time.Now()
	worker := exec.Command(bin, "run")
	worker.Env = append(os.Environ(), env...)
	worker.Stdout, worker.Stderr = logf, logf
	// Its own process group: ^C at the terminal reaches this process,
	// which stops the worker in order; and SIGTERM if this process dies
	// without stopping it.
	worker.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := worker.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = worker.Wait(); close(exited) }()
	s.later("stopping the worker (SIGTERM; it finishes running jobs)", func() {
		_ = worker.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-s.hurry:
			_ = worker.Process.Kill()
			<-exited
		case <-time.After(30 * time.Second):
			_ = worker.Process.Kill()
			<-exited
		}
		if waitErr != nil {
			s.con.detail("the worker exited: %v", waitErr)
		}
	})
	s.watch("the worker", exited, logPath)
	if err := s.waitReady("http://"+httpAddr+"/readyz", 2*time.Minute); err != nil {
		return fmt.Errorf("%w; the end of its log (%s):\n%s", err, logPath, tailOf(logPath))
	}
	s.con.detail("ready in %s", since(start))

	s.con.say("running the demo: %d buyers race for %d seats through Temporal workflows", o.buyers, o.capacity)
	summary, concert, err := s.demo(bin, env, logf, o)
	if err != nil {
		return fmt.Errorf("%w; the worker's log: %s", err, logPath)
	}
	s.con.detail("%s", summary)
	s.showProjection(bin, env, dbURL)

	s.con.printf("\n")
	s.con.printf("River UI:     http://%s/riverui/\n", httpAddr)
	s.con.printf("              user admin, password %s: type them into the browser's login prompt\n", password)
	s.con.printf("              (with user:password@ in the address the page stays blank)\n")
	if temporalUI != "" {
		s.con.printf("Temporal UI:  %s/namespaces/default/workflows\n", temporalUI)
	} else {
		s.con.printf("Temporal UI:  unknown for the server at %s\n", temporalAddr)
	}
	s.con.printf("Metrics:      http://%s/metrics\n", httpAddr)
	s.con.printf("Readiness:    http://%s/readyz\n", httpAddr)
	s.con.printf("Temporal:     %s\n", temporalAddr)
	s.con.printf("PostgreSQL:   %s\n", redactURL(dbURL))
	s.con.printf("Worker log:   %s\n", logPath)

	switch {
	case o.screenshots != "":
		s.con.say("taking screenshots of River UI and Temporal UI into %s", o.screenshots)
		return takeScreenshots(s.ctx, s.con, o.screenshots, "http://"+httpAddr, "admin", password, temporalUI, concert)
	case o.exitAfterDemo:
		return nil
	}
	s.con.printf("\nPress ^C to stop and clean up.\n")
	<-s.ctx.Done()
	return nil
}

// runWorker runs a worker command to its end, its output into the log
// (and stdout, when given).
func (s *session) runWorker(bin string, env []string, logf *os.File, stdout io.Writer, args ...string) error {
	cmd := exec.CommandContext(s.ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	fmt.Fprintf(logf, "=== make dev: worker %s\n", strings.Join(args, " "))
	return cmd.Run()
}

// demo runs `worker demo tickets` and says what happened in one line; its
// JSON summary goes to the log. It returns the line and the concert's id.
func (s *session) demo(bin string, env []string, logf *os.File, o options) (string, string, error) {
	var out strings.Builder
	err := s.runWorker(bin, env, logf, &out, "demo", "tickets",
		"-capacity", strconv.Itoa(o.capacity), "-buyers", strconv.Itoa(o.buyers), "-concurrency", "24")
	fmt.Fprintln(logf, out.String())
	var sum struct {
		Concert          string  `json:"concert"`
		Accepted         int64   `json:"accepted"`
		SoldOut          int64   `json:"sold_out"`
		Errors           int64   `json:"errors"`
		EffectsCompleted int     `json:"effects_completed"`
		Seconds          float64 `json:"seconds"`
		CommandsPerSec   float64 `json:"commands_per_second"`
		OK               bool    `json:"ok"`
	}
	if jerr := json.Unmarshal([]byte(out.String()), &sum); jerr != nil {
		return "", "", fmt.Errorf("the demo failed (%v); no summary", err)
	}
	line := fmt.Sprintf("%d buyers got a seat, %d found the concert sold out (an outcome, not an error), %d errors; %d sale announcements (River effects) completed; %.1fs, %.0f commands/s",
		sum.Accepted, sum.SoldOut, sum.Errors, sum.EffectsCompleted, sum.Seconds, sum.CommandsPerSec)
	if err != nil || !sum.OK {
		return "", "", fmt.Errorf("the demo failed: %s", line)
	}
	return line, sum.Concert, nil
}

func (s *session) waitReady(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if devenv.CheckHTTP(s.ctx, url) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the worker was not ready at %s within %s", url, timeout)
		}
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func createDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("error creating database %s: %w", name, err)
	}
	return nil
}

// guessTemporalUI finds the Web UI of a Temporal server that is not ours
// where the CLI puts it by default (the frontend's port + 1000).
func guessTemporalUI(ctx context.Context, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(port)
	if err != nil || err2 != nil {
		return ""
	}
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(n+1000))
	if devenv.CheckHTTP(ctx, url) != nil {
		return ""
	}
	return url
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(as DATABASE_URL says)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func free(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// showProjection prints the ticket domain's concert_sales projection once
// it has caught up: its status, then its view.
func (s *session) showProjection(bin string, env []string, dbURL string) {
	s.con.say("the concert_sales projection (worker projections status), then its view")
	var out strings.Builder
	status := exec.CommandContext(s.ctx, bin, "projections", "status", "-wait", "30s")
	status.Env, status.Stdout, status.Stderr = append(os.Environ(), env...), &out, &out
	_ = status.Run()
	s.con.printf("%s", out.String())
	conn, err := pgx.Connect(s.ctx, dbURL)
	if err != nil {
		s.con.detail("cannot read the view: %v", err)
		return
	}
	defer conn.Close(s.ctx)
	rows, err := conn.Query(s.ctx, `SELECT concert_id, coalesce(capacity, 0), seats_sold, buyers FROM ticket_sales ORDER BY concert_id LIMIT 20`)
	if err != nil {
		s.con.detail("cannot read the view: %v", err)
		return
	}
	defer rows.Close()
	s.con.printf("\n%-20s %8s %10s %7s\n", "concert", "capacity", "seats sold", "buyers")
	for rows.Next() {
		var id string
		var capacity, sold, buyers int
		if err := rows.Scan(&id, &capacity, &sold, &buyers); err != nil {
			s.con.detail("cannot read the view: %v", err)
			return
		}
		s.con.printf("%-20s %8d %10d %7d\n", id, capacity, sold, buyers)
	}
}

func since(t time.Time) string {
	d := time.Since(t)
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func tailOf(path string) string {
	b, _ := os.ReadFile(path)
	return lastLines(string(b), 15)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
