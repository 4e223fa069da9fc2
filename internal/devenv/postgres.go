// Package devenv starts the external servers factos needs on a developer
// machine or in CI: a throwaway PostgreSQL cluster from the local binaries and a
// Temporal dev server from the pinned temporal CLI. Tests, benchmarks and
// `make dev` share it so there is one way to get a working environment.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresOpts configures a throwaway cluster. The zero value is usable.
type PostgresOpts struct {
	// BinDir holds initdb, pg_ctl and postgres. Default: the directory of
	// pg_ctl on PATH, else the newest /usr/lib/postgresql/*/bin.
	BinDir string

	// Port to listen on (loopback only). Default: a free port.
	Port int

	// Durable keeps fsync and synchronous commit on. Tests leave it off for
	// speed; benchmarks turn it on so numbers resemble a real server.
	Durable bool

	// MaxConnections of the server. Default: 400.
	MaxConnections int

	// Settings are extra `-c name=value` server settings.
	Settings map[string]string
}

// Postgres is a running throwaway cluster.
type Postgres struct {
	dataDir string
	binDir  string
	port    int
	asUser  string // run pg_ctl as this user ("" = current user)
	opts    PostgresOpts
}

// StartPostgres creates a new cluster in a temporary directory and starts it.
// When running as root it runs the server as the `postgres` user, because
// initdb refuses to run as root.
func StartPostgres(ctx context.Context, opts PostgresOpts) (*Postgres, error) {
	binDir, err := findPostgresBin(opts.BinDir)
	if err != nil {
		return nil, err
	}
	if opts.MaxConnections == 0 {
		opts.MaxConnections = 400
	}
	p := &Postgres{binDir: binDir, opts: opts}
	if os.Geteuid() == 0 {
		p.asUser = "postgres"
	}

	p.dataDir, err = os.MkdirTemp("", "factos-pg-")
	if err != nil {
		return nil, fmt.Errorf("error creating data directory: %w", err)
	}
	if p.asUser != "" {
		if err := chownTo(p.dataDir, p.asUser); err != nil {
			_ = os.RemoveAll(p.dataDir)
			return nil, err
		}
	}
	if out, err := p.run(ctx, "initdb", "-D", p.dataDir, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync"); err != nil {
		_ = os.RemoveAll(p.dataDir)
		err = fmt.Errorf("error running initdb: %w: %s", err, out)
		if strings.Contains(string(out), "Permission denied") {
			// As root, the server runs as postgres, which must reach the
			// data directory under TMPDIR.
			err = fmt.Errorf("%w (the postgres user cannot reach %s: set TMPDIR to a directory it can enter, such as /tmp)", err, p.dataDir)
		}
		return nil, err
	}

	// A free port can be taken by someone else between the probe and the
	// server's bind, so retry a few times with a fresh port.
	for attempt := 0; ; attempt++ {
		p.port = opts.Port
		if p.port == 0 {
			if p.port, err = freePort(); err != nil {
				return nil, err
			}
		}
		if err = p.Start(ctx); err == nil {
			return p, nil
		}
		if opts.Port != 0 || attempt == 4 || ctx.Err() != nil {
			// pg_ctl may have been cut short after the server started:
			// stop it before removing its directory.
			_ = p.Destroy()
			return nil, err
		}
	}
}

// URL is the connection string of the `postgres` database as superuser.
func (p *Postgres) URL() string { return p.DatabaseURL("postgres") }

// DatabaseURL is the connection string of the named database.
func (p *Postgres) DatabaseURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

// Port the server listens on.
func (p *Postgres) Port() int { return p.port }

// DataDir is the cluster's data directory.
func (p *Postgres) DataDir() string { return p.dataDir }

// LogFile is the server's log.
func (p *Postgres) LogFile() string { return filepath.Join(p.dataDir, "server.log") }

// Exited returns a channel closed when the running server's postmaster
// ends, whoever stops it or however it dies. pg_ctl starts the postmaster
// as a daemon, not as our child, so this watches its pid (from
// postmaster.pid) through a pidfd.
func (p *Postgres) Exited() (<-chan struct{}, error) {
	pidFile, err := os.ReadFile(filepath.Join(p.dataDir, "postmaster.pid"))
	if err != nil {
		return nil, fmt.Errorf("error reading the postmaster's pid: %w", err)
	}
	line, _, _ := strings.Cut(string(pidFile), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return nil, fmt.Errorf("error reading the postmaster's pid: %q", line)
	}
	return watchPid(pid)
}

// Start starts the server of an existing cluster (after Stop) and waits until
// it accepts connections.
func (p *Postgres) Start(ctx context.Context) error {
	settings := map[string]string{
		"listen_addresses":          "127.0.0.1",
		"port":                      strconv.Itoa(p.port),
		"unix_socket_directories":   p.dataDir,
		"max_connections":           strconv.Itoa(p.opts.MaxConnections),
		"shared_buffers":            "256MB",
		"max_locks_per_transaction": "256",
	}
	if !p.opts.Durable {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range p.opts.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var o strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&o, "-c %s=%s ", k, settings[k])
	}
	logFile := p.LogFile()
	if out, err := p.run(ctx, "pg_ctl", "-D", p.dataDir, "-l", logFile, "-o", o.String(), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("error starting postgres: %w: %s %s", err, out, tail(string(log), 2000))
	}
	return p.waitReady(ctx)
}

// Stop stops the server (fast shutdown) and keeps the cluster on disk.
func (p *Postgres) Stop(ctx context.Context) error {
	if out, err := p.run(ctx, "pg_ctl", "-D", p.dataDir, "-m", "fast", "-w", "stop"); err != nil {
		return fmt.Errorf("error stopping postgres: %w: %s", err, out)
	}
	return nil
}

// Destroy stops the server at once and removes the cluster.
func (p *Postgres) Destroy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = p.run(ctx, "pg_ctl", "-D", p.dataDir, "-m", "immediate", "-w", "stop")
	return os.RemoveAll(p.dataDir)
}

func (p *Postgres) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, p.URL())
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *Postgres) run(ctx context.Context, tool string, args ...string) (string, error) {
	bin := filepath.Join(p.binDir, tool)
	var cmd *exec.Cmd
	if p.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", p.asUser, "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	// pg_ctl keeps the server's stdout open if we hand it a pipe; the log
	// file gets the server's output instead.
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func findPostgresBin(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if env := os.Getenv("FACTOS_PG_BIN"); env != "" {
		if _, err := os.Stat(filepath.Join(env, "initdb")); err != nil {
			return "", fmt.Errorf("FACTOS_PG_BIN=%s holds no initdb: set it to the directory of the PostgreSQL server binaries (Debian: /usr/lib/postgresql/15/bin), or unset it", env)
		}
		return env, nil
	}
	if path, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), "initdb")); err == nil {
			return filepath.Dir(path), nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", errors.New("no PostgreSQL server binaries found: install them (Debian: postgresql) or set FACTOS_PG_BIN or DATABASE_URL")
	}
	sort.Slice(matches, func(i, j int) bool { return pgMajor(matches[i]) > pgMajor(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

func pgMajor(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

func chownTo(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("error looking up user %q to run postgres as (initdb refuses root): %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("error handing %s to user %s: %w", dir, name, err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("error finding a free port: %w", err)
	}
	defer l.Close()
	// Linux hands out ephemeral ports at random and may give this one to the
	// next listen(:0) of any process as soon as it is closed. A connection
	// closed from the listening side first leaves the port in TIME_WAIT for
	// a minute: the kernel does not assign it again meanwhile, while our own
	// servers can still bind it (Go and PostgreSQL set SO_REUSEADDR).
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return 0, fmt.Errorf("error reserving a free port: %w", err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		return 0, fmt.Errorf("error reserving a free port: %w", err)
	}
	_ = s.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr is a loopback host:port nothing listens on (yet).
func FreeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
