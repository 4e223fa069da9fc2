package factosfx

import "github.com/factos-go/factos/projections"

// HTTP paths the worker serves on HTTP_ADDR.
const (
	PathHealth  = "/healthz"  // process alive
	PathReady   = "/readyz"   // database reachable, migrations current, workers started
	PathMetrics = "/metrics"  // Prometheus
	PathRiverUI = "/riverui/" // River UI, when enabled
)

// DefaultHTTPPort is the port of the default HTTP_ADDR.
const DefaultHTTPPort = 8080

// Spec describes what the worker binary reads and serves. `worker spec`
// prints it as JSON; deployment tooling (the Helm chart's tests) checks
// itself against it instead of against a copy that could drift.
type Spec struct {
	Binary   string        `json:"binary"`
	Commands []CommandSpec `json:"commands"`
	Env      []Var         `json:"env"`
	HTTP     HTTPSpec      `json:"http"`
	// Projections are the domain's projections (see DomainSpec).
	Projections []projections.Info `json:"projections,omitempty"`
	// ShutdownTimeoutVar bounds the graceful stop; a pod's termination
	// grace period must be longer.
	ShutdownTimeoutVar string `json:"shutdown_timeout_var"`
}

// CommandSpec is a subcommand and the arguments that select it.
type CommandSpec struct {
	Name        string   `json:"name"`
	Args        []string `json:"args"`
	Description string   `json:"description"`
}

// HTTPSpec is the worker's HTTP surface.
type HTTPSpec struct {
	AddrVar     string `json:"addr_var"`
	DefaultPort int    `json:"default_port"`
	Liveness    string `json:"liveness"`
	Readiness   string `json:"readiness"`
	Metrics     string `json:"metrics"`
	RiverUI     string `json:"riverui"`
}

// Commands of the worker binary.
var Commands = []CommandSpec{
	{Name: "run", Args: []string{"run"}, Description: "Run the Temporal worker, the River workers and the HTTP server until SIGINT/SIGTERM (the default)."},
	{Name: "migrate", Args: []string{"migrate"}, Description: "Apply the event store, River and application migrations, then exit."},
	{Name: "migrate status", Args: []string{"migrate", "status"}, Description: "Print which migrations are applied."},
	{Name: "lock-strategy", Args: []string{"lock-strategy"}, Description: "Print the lock strategy the database records (the first process to read or write it records its own)."},
	{Name: "lock-strategy set", Args: []string{"lock-strategy", "set"}, Description: "Record another lock strategy, with every writer stopped: NAME --writers-stopped."},

	{Name: "spec", Args: []string{"spec"}, Description: "Print this description as JSON."},
	{Name: "projections status", Args: []string{"projections", "status"}, Description: "Print every projection's checkpoint, lag, state, owner and skips (-wait D: first wait until they caught up; -json)."},
	{Name: "projections reset", Args: []string{"projections", "reset"}, Description: "Reset a projection: NAME [-from POS] [-reason TEXT]; the running worker rebuilds it."},
	{Name: "projections rebuild", Args: []string{"projections", "rebuild"}, Description: "Reset a projection and wait until it has caught up: NAME [-from POS] [-reason TEXT]."},
	{Name: "projections skip", Args: []string{"projections", "skip"}, Description: "Skip the event a projection is stuck at, recorded: NAME POS [-reason TEXT]."},
	{Name: "effects status", Args: []string{"effects", "status"}, Description: "Print effect jobs by kind and River state, and the ordering keys halted by a failed effect (exit 3 when one is; -json)."},
	{Name: "effects list", Args: []string{"effects", "list"}, Description: "List effects, ordered and unordered, newest first: [-id JOB] [-effect KEY] [-kind KIND] [-key ORDERING_KEY] [-state STATE] [-limit N] [-json]."},
	{Name: "effects retry", Args: []string{"effects", "retry"}, Description: "Run a discarded, cancelled or skipped effect again, planning it anew if River's cleaner deleted its job: EFFECT_KEY or -id JOB."},
	{Name: "effects skip", Args: []string{"effects", "skip"}, Description: "Go on without an effect: a halted ordered effect is skipped and its key goes on; an unordered one not yet run is cancelled: EFFECT_KEY or -id JOB."},
	{Name: "reactors status", Args: []string{"reactors", "status"}, Description: "Print each reactor's ledger position, the records it has not reacted to, and its pending and discarded reaction jobs (-json)."},
	{Name: "reactors replay", Args: []string{"reactors", "replay"}, Description: "Enqueue the reactions a reactor has not run: NAME [-from POS] [-name CHECKPOINT]; running workers run them."},
	{Name: "reactors reset", Args: []string{"reactors", "reset"}, Description: "Forget a reactor's reactions after a position and replay them: NAME [-from POS] [-effects: run their effects again too] [-no-replay]. Needs DELETE on the ledgers: run it as the migration role."},
}

// DomainSpec returns the worker's spec with the domain's projections.
func DomainSpec(d Domain) (Spec, error) {
	s := WorkerSpec()
	reg, err := d.ProjectionRegistry(DomainEnv{})
	if err != nil {
		return s, err
	}
	s.Projections = reg.Infos()
	return s, nil
}

// WorkerSpec returns the worker's spec.
func WorkerSpec() Spec {
	return Spec{
		Binary:   "worker",
		Commands: Commands,
		Env:      Vars,
		HTTP: HTTPSpec{AddrVar: "HTTP_ADDR", DefaultPort: DefaultHTTPPort, Liveness: PathHealth,
			Readiness: PathReady, Metrics: PathMetrics, RiverUI: PathRiverUI},
		ShutdownTimeoutVar: "SHUTDOWN_TIMEOUT",
	}
}
