// Package testtemporal gives tests a real Temporal server: the one at
// TEMPORAL_ADDRESS (or 127.0.0.1:7233) if it answers, otherwise a dev
// server it starts from the pinned temporal CLI (see internal/devenv) and
// stops afterwards. Tests isolate themselves with their own task queues and
// workflow ids.
package testtemporal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/factos-go/factos/internal/devenv"
)

var (
	address   string
	namespace = "default"
)

// Setup finds or starts the server. Pass it to testdb.Main.
func Setup() (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	candidate := os.Getenv("TEMPORAL_ADDRESS")
	if candidate == "" {
		candidate = "127.0.0.1:7233"
	}
	if ns := os.Getenv("TEMPORAL_NAMESPACE"); ns != "" {
		namespace = ns
	}
	if devenv.CheckTemporal(ctx, candidate, namespace) == nil {
		address = candidate
		return func() {}, nil
	}
	srv, err := devenv.StartTemporal(ctx, devenv.TemporalOpts{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("no Temporal server at %s and none could be started: %w", candidate, err)
	}
	address = srv.Address()
	// Child processes that run TestMain again (fuzz workers) reuse it; see
	// testdb.Main.
	if err := os.Setenv("TEMPORAL_ADDRESS", address); err != nil {
		srv.Destroy()
		return nil, err
	}
	return srv.Destroy, nil
}

// Address of the server.
func Address() string { return address }

// Namespace of the server.
func Namespace() string { return namespace }

// Client returns a client closed when the test ends.
func Client(t testing.TB) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: address, Namespace: namespace, Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Worker starts a worker on a fresh task queue, with what register adds,
// stopped when the test ends. It returns the task queue.
func Worker(t testing.TB, c client.Client, register func(w worker.Worker)) string {
	t.Helper()
	queue := UniqueID("tq")
	w := worker.New(c, queue, worker.Options{})
	register(w)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return queue
}

// UniqueID returns prefix plus a random suffix, for task queues and
// workflow ids that do not collide across tests or runs.
func UniqueID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}
