// Command dev is `make dev`: it starts what the worker needs (a throwaway
// PostgreSQL unless DATABASE_URL is set, a Temporal dev server unless one
// answers at TEMPORAL_ADDRESS), migrates, runs the worker, runs the ticket
// demo through Temporal, prints where River UI is, and keeps everything
// running until ^C. Then it stops the worker gracefully and removes what
// it started.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/factos-go/factos/internal/devenv"
)

func main() {
	exitAfterDemo := flag.Bool("exit-after-demo", false, "stop everything once the demo has run (for CI)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *exitAfterDemo); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, exitAfterDemo bool) error {
	say := func(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		say("starting PostgreSQL (no DATABASE_URL)")
		pg, err := devenv.StartPostgres(ctx, devenv.PostgresOpts{})
		if err != nil {
			return err
		}
		defer func() { say("removing PostgreSQL"); _ = pg.Destroy() }()
		conn, err := pgx.Connect(ctx, pg.URL())
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "CREATE DATABASE factos")
		_ = conn.Close(ctx)
		if err != nil {
			return err
		}
		dbURL = pg.DatabaseURL("factos")
	}

	temporalAddr := os.Getenv("TEMPORAL_ADDRESS")
	if temporalAddr == "" {
		temporalAddr = "127.0.0.1:7233"
	}
	if devenv.CheckTemporal(ctx, temporalAddr, "default") != nil {
		say("starting a Temporal dev server (none answers at %s; the first run builds the CLI, which takes minutes)", temporalAddr)
		opts := devenv.TemporalOpts{}
		if free(temporalAddr) {
			_, port, _ := net.SplitHostPort(temporalAddr)
			fmt.Sscan(port, &opts.Port)
		}
		tmp, err := devenv.StartTemporal(ctx, opts)
		if err != nil {
			return err
		}
		defer func() { say("stopping Temporal"); tmp.Destroy() }()
		temporalAddr = tmp.Address()
	}

	dir, err := os.MkdirTemp("", "factos-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "worker")
	say("building the worker")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/worker").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w: %s", err, out)
	}

	httpAddr := os.Getenv("HTTP_ADDR")
	if httpAddr == "" {
		httpAddr = "127.0.0.1:8080"
		if !free(httpAddr) {
			httpAddr = "127.0.0.1:0"
			l, err := net.Listen("tcp", httpAddr)
			if err != nil {
				return err
			}
			httpAddr = l.Addr().String()
			l.Close()
		}
	}
	var pw [6]byte
	_, _ = rand.Read(pw[:])
	password := hex.EncodeToString(pw[:])
	env := append(os.Environ(),
		"DATABASE_URL="+dbURL, "TEMPORAL_ADDRESS="+temporalAddr, "HTTP_ADDR="+httpAddr,
		"RIVERUI_ENABLED=true", "RIVERUI_USERNAME=admin", "RIVERUI_PASSWORD="+password,
		"LOG_FORMAT=text")

	say("migrating")
	migrate := exec.CommandContext(ctx, bin, "migrate")
	migrate.Env, migrate.Stdout, migrate.Stderr = env, os.Stdout, os.Stderr
	if err := migrate.Run(); err != nil {
		return fmt.Errorf("worker migrate: %w", err)
	}

	say("starting the worker (logs in %s)", filepath.Join(dir, "worker.log"))
	logf, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		return err
	}
	worker := exec.Command(bin, "run")
	worker.Env, worker.Stdout, worker.Stderr = env, logf, logf
	if err := worker.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- worker.Wait() }()
	defer func() {
		say("stopping the worker (SIGTERM)")
		_ = worker.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				say("worker exited: %v", err)
			}
		case <-time.After(60 * time.Second):
			_ = worker.Process.Kill()
		}
	}()
	if err := waitReady(ctx, "http://"+httpAddr+"/readyz", exited); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "worker.log"))
		return fmt.Errorf("%w\n%s", err, log)
	}

	say("running the demo: 300 buyers race for 100 seats through Temporal workflows")
	demo := exec.CommandContext(ctx, bin, "demo", "tickets", "-capacity", "100", "-buyers", "300", "-concurrency", "24")
	demo.Env, demo.Stdout, demo.Stderr = env, os.Stdout, os.Stderr
	demoErr := demo.Run()
	if demoErr == nil {
		showProjection(ctx, bin, env, dbURL)
	}

	fmt.Printf("\nRiver UI:  http://%s/riverui/   (user admin, password %s)\n", httpAddr, password)
	fmt.Printf("Metrics:   http://%s/metrics\nReadiness: http://%s/readyz\nTemporal:  %s\n", httpAddr, httpAddr, temporalAddr)
	if demoErr != nil {
		return fmt.Errorf("demo: %w", demoErr)
	}
	if exitAfterDemo {
		return nil
	}
	fmt.Println("\nPress ^C to stop and clean up.")
	select {
	case <-ctx.Done():
	case err := <-exited:
		exited <- err
		return fmt.Errorf("worker exited: %v", err)
	}
	return nil
}

func waitReady(ctx context.Context, url string, exited chan error) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("worker exited before it was ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("worker not ready at %s", url)
}

func free(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// showProjection prints the ticket domain's concert_sales projection once
// it has caught up: its status, then its view.
func showProjection(ctx context.Context, bin string, env []string, dbURL string) {
	fmt.Printf("\n==> the concert_sales projection: `worker projections status`, then its view\n")
	status := exec.CommandContext(ctx, bin, "projections", "status", "-wait", "30s")
	status.Env, status.Stdout, status.Stderr = env, os.Stdout, os.Stderr
	_ = status.Run()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		fmt.Println("cannot read the view:", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT concert_id, coalesce(capacity, 0), seats_sold, buyers FROM ticket_sales ORDER BY concert_id LIMIT 20`)
	if err != nil {
		fmt.Println("cannot read the view:", err)
		return
	}
	defer rows.Close()
	fmt.Printf("\n%-20s %8s %10s %7s\n", "concert", "capacity", "seats sold", "buyers")
	for rows.Next() {
		var id string
		var capacity, sold, buyers int
		if err := rows.Scan(&id, &capacity, &sold, &buyers); err != nil {
			fmt.Println("cannot read the view:", err)
			return
		}
		fmt.Printf("%-20s %8d %10d %7d\n", id, capacity, sold, buyers)
	}
}
