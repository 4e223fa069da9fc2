package reliability

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

var testWorkerBin string

// buildTestWorker builds the test worker (the real worker's modules with
// a domain that has slow, hanging and failing effects) once per run.
func buildTestWorker() (func(), error) {
	dir, err := os.MkdirTemp("", "factos-reliability-")
	if err != nil {
		return nil, err
	}
	testWorkerBin = filepath.Join(dir, "testworker")
	if out, err := exec.Command("go", "build", "-o", testWorkerBin, "./testworker").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("building the test worker: %w: %s", err, out)
	}
	return func() { os.RemoveAll(dir) }, nil
}
