// Package factosfx wires a factos worker process with go.uber.org/fx: the
// pgx pool, the event store with its outbox, the reactor registry and River
// client, the domain's projections, the command registry and Temporal
// worker, and an HTTP server for health, readiness, metrics and River UI.
//
// An application's whole worker binary — run, migrate, spec,
// lock-strategy and the operating commands of projections, effects and
// reactors — is one call with its Domain:
//
//	func main() { factosfx.Main(myDomain) }
//
// cmd/worker is that call with the ticket example's domain and its demo
// command. The domain's own tables are a versioned migration line
// (Domain.Migrations), applied by `worker migrate` after the store's and
// River's and listed by `worker migrate status`. An application that
// composes its own fx graph uses the modules instead, with its Domain and
// Config:
//
//	fx.New(
//		factosfx.Module,
//		fx.Supply(cfg, myDomain),
//		fx.StopTimeout(cfg.ShutdownTimeout+10*time.Second), // as Options does
//	).Run()
//
// (fx's own stop timeout, 15s, is shorter than SHUTDOWN_TIMEOUT's default
// of 30s: without the option fx gives up on a stop the worker is still
// draining.)
//
// Start-up is ordered so that the process refuses work until it can do it
// right: the HTTP server answers at once (/healthz), but River and the
// Temporal worker start only once the database answers and its migrations
// are current, and /readyz says so. A process that does not get them
// within STARTUP_TIMEOUT logs what it waited for and exits 1; once started,
// an outage only makes it unready. On SIGTERM the process stops taking
// work, lets running jobs and activities finish within SHUTDOWN_TIMEOUT,
// and closes the pool last.
//
// # Temporal Cloud and TLS
//
// The Temporal connection takes TLS, a mutual-TLS client certificate and an
// API key from the variables Temporal's own CLI reads (TEMPORAL_TLS_*,
// TEMPORAL_API_KEY; see Vars). LoadConfig reads and checks the certificate
// files with the rest of the configuration, naming the variable of each
// problem and never quoting a key, and refuses an API key without TLS.
// TemporalClientOptions turns a Config into the Temporal client's options;
// a client certificate given as files is read again at every new
// connection, so a rotated certificate needs no restart.
package factosfx
