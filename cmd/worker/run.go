package main

import (
	"context"
	"fmt"
	"os"

	"go.uber.org/fx"

	"github.com/factos-go/factos/factosfx"
)

func spec() factosfx.Spec {
	s, err := factosfx.DomainSpec(ticketDomain())
	if err != nil {
		// The domain's registration is code: a failure is a bug, found
		// by every test that runs the binary.
		panic(err)
	}
	return s
}

// loadConfig reads the environment, printing what is wrong (every variable
// at once) and returning nil when it is invalid.
func loadConfig() *factosfx.Config {
	cfg, err := factosfx.LoadConfig(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		fmt.Fprintln(os.Stderr, "worker: `worker spec` lists every variable with its default")
		return nil
	}
	return cfg
}

// runWorker runs until SIGINT or SIGTERM (fx listens for both) or until a
// component asks to shut down, then stops gracefully.
func runWorker(ctx context.Context) int {
	cfg := loadConfig()
	if cfg == nil {
		return 2
	}
	app := fx.New(factosfx.Options(cfg, ticketDomain()))
	if err := app.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	startCtx, cancel := context.WithTimeout(ctx, fx.DefaultTimeout)
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		fmt.Fprintln(os.Stderr, "worker: start:", err)
		return 1
	}
	sig := <-app.Wait()
	stopCtx, stopCancel := context.WithTimeout(context.WithoutCancel(ctx), app.StopTimeout())
	defer stopCancel()
	if err := app.Stop(stopCtx); err != nil {
		fmt.Fprintln(os.Stderr, "worker: stop:", err)
		return 1
	}
	return sig.ExitCode
}
