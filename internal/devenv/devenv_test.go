package devenv_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/factos-go/factos/internal/devenv"
)

// With UI set, the dev server serves Temporal's Web UI on loopback, and
// the UI reads the server's namespace.
func TestTemporalServesItsUI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, err := devenv.StartTemporal(ctx, devenv.TemporalOpts{UI: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Destroy)
	ui := srv.UIURL()
	if !strings.HasPrefix(ui, "http://127.0.0.1:") {
		t.Fatalf("UI at %q, want loopback", ui)
	}
	for _, path := range []string{"/", "/namespaces/default/workflows", "/api/v1/namespaces/default/workflows"} {
		if err := devenv.CheckHTTP(ctx, ui+path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}

	// Exited reports the end of the process, here a stop.
	select {
	case <-srv.Exited():
		t.Fatal("Exited before the stop")
	default:
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("Exited not closed after Stop")
	}
	if _, err := http.Get(ui); err == nil {
		t.Error("the UI still answers after Stop")
	}
}

func TestTemporalIsHeadlessByDefault(t *testing.T) {
	t.Parallel()
	srv, err := devenv.StartTemporal(context.Background(), devenv.TemporalOpts{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Destroy)
	if ui := srv.UIURL(); ui != "" {
		t.Fatalf("UIURL %q without UI", ui)
	}
}

// Exited watches the postmaster, which pg_ctl starts as a daemon, not as
// our child.
func TestPostgresExited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := devenv.StartPostgres(ctx, devenv.PostgresOpts{MaxConnections: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Destroy() })
	exited, err := pg.Exited()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		t.Fatal("Exited while the server runs")
	default:
	}
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("Exited not closed after the server stopped")
	}
}

// A free address stays reserved: the kernel does not hand its port to the
// next listen(:0) calls (of this or another process, such as a dev server
// choosing its internal ports), while binding it explicitly works at once.
func TestFreeAddrIsNotReassigned(t *testing.T) {
	t.Parallel()
	addr, err := devenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	for range 20000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := l.Addr().String()
		_ = l.Close()
		if got == addr {
			t.Fatalf("listen(:0) was given %s, reserved by FreeAddr", addr)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("binding the free address: %v", err)
	}
	_ = l.Close()
}

// FACTOS_PG_BIN pointing where no PostgreSQL is: the error names the
// variable and what to set it to, before anything is created.
func TestWrongPostgresBinNamesTheVariable(t *testing.T) {
	t.Setenv("FACTOS_PG_BIN", t.TempDir())
	_, err := devenv.StartPostgres(context.Background(), devenv.PostgresOpts{})
	if err == nil || !strings.Contains(err.Error(), "FACTOS_PG_BIN=") || !strings.Contains(err.Error(), "holds no initdb") {
		t.Fatalf("StartPostgres with FACTOS_PG_BIN on an empty directory: %v", err)
	}
}
