package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// helmVersion is the helm built when none is found; the Makefile pins the
// same version.
const helmVersion = "v3.22.0"

// chartDir is the chart under test, relative to this package.
const chartDir = "helm/factos-worker"

// workDir holds what the tests build (helm's home, the worker binary). It is
// per test binary and removed by TestMain.
var workDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "factos-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// helmBin finds helm once per test binary, building the pinned version if it
// is missing, so that no test is ever skipped for want of it.
var helmBin = sync.OnceValues(func() (string, error) {
	path := os.Getenv("FACTOS_HELM_BIN")
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("error finding the home directory: %w", err)
		}
		path = filepath.Join(home, ".cache", "factos", "bin", "helm-"+helmVersion, "helm")
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if filepath.Base(path) != "helm" {
		return "", fmt.Errorf("helm not found at %s, and go install can only build it as a file named helm", path)
	}
	cmd := exec.Command("go", "install", "helm.sh/helm/v3/cmd/helm@"+helmVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(path))
	// Outside any module, so no go.mod or go.work of ours takes part.
	cmd.Dir = workDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("error building helm %s into %s: %w\n%s", helmVersion, filepath.Dir(path), err, out)
	}
	return path, nil
})

// runHelm runs helm with its config, cache and data directories in workDir,
// so the tests neither read nor change the user's helm setup, and with an
// unreachable HTTP proxy, so anything that tries the network (a remote $ref in
// the schema, a chart dependency) fails instead of passing on a connected
// machine only.
func runHelm(t *testing.T, args ...string) (stdout string, err error) {
	t.Helper()
	bin, err := helmBin()
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(workDir, "helm-home")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9",
		"http_proxy=http://127.0.0.1:9", "https_proxy=http://127.0.0.1:9",
		"NO_PROXY=", "no_proxy=",
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// repoRoot is the factos module's directory: the parent of this module.
func repoRoot() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("error reading the factos go.mod: %w", err)
	}
	if !bytes.HasPrefix(mod, []byte("module github.com/factos-go/factos\n")) {
		return "", fmt.Errorf("%s is not the factos module", root)
	}
	return root, nil
}

// workerSpec is what `worker spec` prints, the fields the chart depends on.
type workerSpec struct {
	Binary   string `json:"binary"`
	Commands []struct {
		Name string   `json:"name"`
		Args []string `json:"args"`
	} `json:"commands"`
	Env  []specVar `json:"env"`
	HTTP struct {
		AddrVar     string `json:"addr_var"`
		DefaultPort int    `json:"default_port"`
		Liveness    string `json:"liveness"`
		Readiness   string `json:"readiness"`
		Metrics     string `json:"metrics"`
		RiverUI     string `json:"riverui"`
	} `json:"http"`
	ShutdownTimeoutVar string `json:"shutdown_timeout_var"`
}

// command returns the arguments that select a subcommand.
func (s *workerSpec) command(t *testing.T, name string) []string {
	t.Helper()
	for _, c := range s.Commands {
		if c.Name == name {
			return c.Args
		}
	}
	t.Fatalf("worker spec has no command %q", name)
	return nil
}

// specVar is one environment variable of the worker.
type specVar struct {
	Name     string `json:"name"`
	Default  string `json:"default"`
	Required bool   `json:"required"`
	Secret   bool   `json:"secret"`
}

// envVar returns the spec of an environment variable, or false.
func (s *workerSpec) envVar(name string) (specVar, bool) {
	for _, e := range s.Env {
		if e.Name == name {
			return e, true
		}
	}
	return specVar{}, false
}

// workerContract builds the real worker and asks it for its contract, once
// per test binary: the chart is checked against the binary, not a copy.
var workerContract = sync.OnceValues(func() (*workerSpec, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(workDir, "worker")
	build := exec.Command("go", "build", "-o", bin, "./cmd/worker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("error building the worker: %w\n%s", err, out)
	}
	var out, errOut bytes.Buffer
	run := exec.Command(bin, "spec")
	run.Stdout, run.Stderr = &out, &errOut
	if err := run.Run(); err != nil {
		return nil, fmt.Errorf("error running worker spec: %w\n%s", err, errOut.String())
	}
	var s workerSpec
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		return nil, fmt.Errorf("error decoding worker spec: %w", err)
	}
	var missing []string
	for what, v := range map[string]string{
		"binary": s.Binary, "http.addr_var": s.HTTP.AddrVar, "http.liveness": s.HTTP.Liveness,
		"http.readiness": s.HTTP.Readiness, "http.metrics": s.HTTP.Metrics, "http.riverui": s.HTTP.RiverUI,
		"shutdown_timeout_var": s.ShutdownTimeoutVar,
	} {
		if v == "" {
			missing = append(missing, what)
		}
	}
	if s.HTTP.DefaultPort == 0 || len(s.Env) == 0 || len(s.Commands) == 0 {
		missing = append(missing, "http.default_port, env or commands")
	}
	if len(missing) > 0 {
		return nil, errors.New("worker spec lacks " + strings.Join(missing, ", "))
	}
	return &s, nil
})

func mustSpec(t *testing.T) *workerSpec {
	t.Helper()
	s, err := workerContract()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
