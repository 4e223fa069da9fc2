package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"golang.org/x/sys/unix"
)

// TemporalVersion is the pinned version of the temporal CLI whose dev
// server tests and `make dev` run. CLI v1.6 and later cannot be built with
// `go install`, so this is the newest one the Go module proxy can build.
const TemporalVersion = "v1.5.1"

// TemporalBinary returns the path of the pinned temporal CLI (see
// TemporalBinaryPath), building it with BuildTemporalBinary if it is
// missing (minutes, once).
func TemporalBinary(ctx context.Context) (string, error) {
	path, built, err := TemporalBinaryPath()
	if err != nil || built {
		return path, err
	}
	// Test binaries of several packages start at once on a fresh machine;
	// without the lock each would build the CLI, side by side, in minutes
	// times their number. The first builds; the others wait, then find it.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	unlock, err := LockFile(path + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	return path, BuildTemporalBinary(ctx, path)
}

// LockFile takes an exclusive lock on the file at path (created if
// missing), waiting for it, across processes. unlock releases it; so does
// the process's exit, however it ends.
func LockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("error locking %s: %w", path, err)
	}
	return func() { _ = f.Close() }, nil
}

// TemporalBinaryPath returns where the pinned temporal CLI is, and whether
// it is there: the one named by FACTOS_TEMPORAL_BIN if it exists, else the
// one in the tools cache (~/.cache/factos/bin/temporal-<version>/temporal).
func TemporalBinaryPath() (path string, built bool, err error) {
	if p := os.Getenv("FACTOS_TEMPORAL_BIN"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p, true, nil
		}
	}
	dir, err := ToolsDir()
	if err != nil {
		return "", false, err
	}
	path = filepath.Join(dir, "temporal-"+TemporalVersion, "temporal")
	_, err = os.Stat(path)
	return path, err == nil, nil
}

// BuildTemporalBinary builds the pinned temporal CLI into path with `go
// install` from the Go module proxy. It takes minutes.
func BuildTemporalBinary(ctx context.Context, path string) error {
	if out, err := RunGo(ctx, []string{"GOBIN=" + filepath.Dir(path)}, "install", "github.com/temporalio/cli/cmd/temporal@"+TemporalVersion); err != nil {
		return fmt.Errorf("error building the temporal CLI %s: %w: %s", TemporalVersion, err, tail(string(out), 2000))
	}
	return nil
}

// RunGo runs the go command with args, and env added to this process's
// environment, and returns its combined output. It runs in a process group
// of its own, so that ^C at a terminal reaches the caller, which decides:
// cancelling ctx interrupts the go command and the compilers it runs as ^C
// would, and kills them 10s later if they still run. An interrupted go
// command leaves its work directory behind, so it gets a GOTMPDIR of its
// own, removed afterwards.
func RunGo(ctx context.Context, env []string, args ...string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "factos-go-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(append(os.Environ(), env...), "GOTMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil && cmd.Process != nil {
		// The compilers of a go command killed after WaitDelay.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	return out, err
}

// ToolsDir is the cache of pinned tools: FACTOS_TOOLS, else
// ~/.cache/factos/bin.
func ToolsDir() (string, error) {
	if d := os.Getenv("FACTOS_TOOLS"); d != "" {
		return d, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no tools cache directory: %w", err)
	}
	return filepath.Join(cache, "factos", "bin"), nil
}

// TemporalOpts configures a dev server. The zero value is usable.
type TemporalOpts struct {
	// Bin is the temporal CLI. Default: TemporalBinary.
	Bin string
	// Port of the frontend (gRPC). Default: a free port.
	Port int
	// DBFile persists the server's state, so that a restarted server keeps
	// its workflows. Default: a file in a temporary directory.
	DBFile string
	// Namespace created at start. Default: "default".
	Namespace string
	// LogFile receives the server's output. Default: a file next to DBFile.
	LogFile string
	// UI serves Temporal's Web UI on 127.0.0.1:UIPort. Default: off (tests
	// and benchmarks need no UI).
	UI bool
	// UIPort of the Web UI when UI is set. Default: a free port.
	UIPort int
}

// Temporal is a running Temporal dev server.
type Temporal struct {
	opts    TemporalOpts
	tmpDir  string
	cmd     *exec.Cmd
	exited  chan struct{}
	ports   [2]int // http, metrics
	started bool
}

// uiHost is where the dev server's Web UI listens.
const uiHost = "127.0.0.1"

// StartTemporal starts a dev server on loopback and waits until its
// namespace answers.
func StartTemporal(ctx context.Context, opts TemporalOpts) (*Temporal, error) {
	if opts.Bin == "" {
		bin, err := TemporalBinary(ctx)
		if err != nil {
			return nil, err
		}
		opts.Bin = bin
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	t := &Temporal{opts: opts}
	if t.opts.DBFile == "" || t.opts.LogFile == "" {
		dir, err := os.MkdirTemp("", "factos-temporal-")
		if err != nil {
			return nil, err
		}
		t.tmpDir = dir
		if t.opts.DBFile == "" {
			t.opts.DBFile = filepath.Join(dir, "temporal.db")
		}
		if t.opts.LogFile == "" {
			t.opts.LogFile = filepath.Join(dir, "server.log")
		}
	}
	ports := []*int{&t.opts.Port, &t.ports[0], &t.ports[1]}
	if t.opts.UI {
		ports = append(ports, &t.opts.UIPort)
	}
	// A port found free can be taken by another process before the server
	// binds it (test packages start their servers side by side, and the
	// server picks its internal ports the same way); the server then exits
	// during start. Only then, and only when every port and the database
	// are ours to choose, it is tried again on new ports.
	var chosen []*int
	for _, p := range ports {
		if *p == 0 {
			chosen = append(chosen, p)
		}
	}
	retryable := len(chosen) == len(ports) && opts.DBFile == ""
	for attempt := 1; ; attempt++ {
		for _, p := range chosen {
			var err error
			if *p, err = freePort(); err != nil {
				t.Destroy()
				return nil, err
			}
		}
		err := t.Start(ctx)
		if err == nil {
			return t, nil
		}
		if !retryable || attempt == 3 || !errors.Is(err, errExitedDuringStart) {
			t.Destroy()
			return nil, err
		}
		_ = os.Remove(t.opts.DBFile)
	}
}

// errExitedDuringStart: the server process ended before it answered.
var errExitedDuringStart = errors.New("temporal dev server exited during start")

// Address is the frontend's host:port.
func (t *Temporal) Address() string { return "127.0.0.1:" + strconv.Itoa(t.opts.Port) }

// Namespace the server was started with.
func (t *Temporal) Namespace() string { return t.opts.Namespace }

// UIURL is the Web UI's address (http://127.0.0.1:port), or "" without UI.
func (t *Temporal) UIURL() string {
	if !t.opts.UI {
		return ""
	}
	return "http://" + net.JoinHostPort(uiHost, strconv.Itoa(t.opts.UIPort))
}

// LogFile is the file that receives the server's output.
func (t *Temporal) LogFile() string { return t.opts.LogFile }

// Exited is closed when the server process ends: after Stop, or when it
// crashes. A restart (Start) makes a new channel.
func (t *Temporal) Exited() <-chan struct{} { return t.exited }

// Start (re)starts the server process with the same ports and database
// file, and waits until it answers.
func (t *Temporal) Start(ctx context.Context) error {
	if t.started {
		return errors.New("temporal dev server already running")
	}
	logf, err := os.OpenFile(t.opts.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	ui := []string{"--headless"}
	if t.opts.UI {
		ui = []string{"--ui-ip", uiHost, "--ui-port", strconv.Itoa(t.opts.UIPort)}
	}
	t.cmd = exec.Command(t.opts.Bin, append(append([]string{"server", "start-dev"}, ui...),
		"--ip", "127.0.0.1", "--port", strconv.Itoa(t.opts.Port),
		"--http-port", strconv.Itoa(t.ports[0]), "--metrics-port", strconv.Itoa(t.ports[1]),
		"--db-filename", t.opts.DBFile, "--namespace", t.opts.Namespace,
		"--log-level", "warn",
		"--dynamic-config-value", "frontend.enableServerVersionCheck=false",
		// The dev server has one history shard, whose transfer-queue reader
		// loads tasks at most 20 times a second by default: every hand-off
		// of a workflow (start, activity, result) then waits for the next
		// 50ms slot, and a one-activity workflow takes 150ms. Production
		// clusters spread this over hundreds of shards.
		"--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000",
		// One task-queue partition: with several, a poller waiting on one
		// partition can miss a task written to another for seconds.
		"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
		"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
		// SQLite syncs every write by default (10ms each on this disk);
		// WAL with normal sync keeps the file consistent across restarts,
		// which is all a test server needs.
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")...)
	t.cmd.Stdout, t.cmd.Stderr = logf, logf
	// Its own process group, so that a signal to the test's group (^C)
	// does not race our orderly stop; and a stop if the process that
	// started it dies without stopping it.
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := t.cmd.Start(); err != nil {
		return fmt.Errorf("error starting the temporal dev server: %w", err)
	}
	t.started = true
	t.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(t.cmd, t.exited)
	if err := t.waitReady(ctx); err != nil {
		_ = t.Stop()
		logText, _ := os.ReadFile(t.opts.LogFile)
		return fmt.Errorf("%w: %s", err, panicOrTail(string(logText)))
	}
	return nil
}

func (t *Temporal) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-t.exited:
			return errExitedDuringStart
		default:
		}
		err := CheckTemporal(ctx, t.Address(), t.opts.Namespace)
		if err == nil && t.opts.UI {
			// The UI's own API, which it reaches the frontend through:
			// ready when the UI can show the namespace, not just its page.
			err = CheckHTTP(ctx, t.UIURL()+"/api/v1/namespaces/"+url.PathEscape(t.opts.Namespace))
		}
		if err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("temporal dev server not ready: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// CheckTemporal reports whether a Temporal frontend answers at address
// and serves namespace.
func CheckTemporal(ctx context.Context, address, namespace string) error {
	conn, err := net.DialTimeout("tcp", address, time.Second)
	if err != nil {
		return err
	}
	_ = conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: address, Namespace: namespace, Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	return err
}

// CheckHTTP reports whether address answers a GET with 200 OK within 5s.
func CheckHTTP(ctx context.Context, address string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, address, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", address, resp.Status)
	}
	return nil
}

// Stop stops the server (SIGTERM, then SIGKILL after 10s) and keeps its
// database file.
func (t *Temporal) Stop() error {
	if !t.started {
		return nil
	}
	t.started = false
	_ = t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
		<-t.exited
	}
	return nil
}

// Destroy stops the server and removes its temporary files.
func (t *Temporal) Destroy() {
	_ = t.Stop()
	if t.tmpDir != "" {
		_ = os.RemoveAll(t.tmpDir)
	}
}

// panicOrTail is what of a server's log explains a failed start: from its
// panic message on (the cause is in the first lines of a Go panic, the
// stack below them), else the end of the log.
func panicOrTail(log string) string {
	if i := strings.LastIndex(log, "\npanic: "); i >= 0 {
		log = log[i+1:]
		if len(log) > 2000 {
			log = log[:2000] + "\n..."
		}
		return log
	}
	return tail(log, 2000)
}
