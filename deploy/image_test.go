package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// There is no container engine here, so the image is checked statically: the
// Dockerfile against the worker's contract and the chart, and .dockerignore
// against the files the build needs.

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, ...
	Args string
}

func readDockerfile(t *testing.T) (stages [][]instruction) {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		if in.Cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.Cmd != "ARG" {
				t.Fatalf("Dockerfile: %s before the first FROM", in.Cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	return stages
}

// execForm decodes a JSON-array (exec form) ENTRYPOINT or CMD; the shell form
// would need a shell, which distroless does not have.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var args []string
	if err := json.Unmarshal([]byte(in.Args), &args); err != nil {
		t.Fatalf("%s %s is not in exec form: %v", in.Cmd, in.Args, err)
	}
	return args
}

func last(stage []instruction, cmd string) (instruction, bool) {
	for i := len(stage) - 1; i >= 0; i-- {
		if stage[i].Cmd == cmd {
			return stage[i], true
		}
	}
	return instruction{}, false
}

// TestDockerfile checks the image against the worker's contract and the
// chart: the chart passes only args, so the entrypoint must be the worker.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	sp := mustSpec(t)
	stages := readDockerfile(t)
	build, final := stages[0], stages[len(stages)-1]

	if from := final[0].Args; from != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage FROM %s", from)
	}
	var built bool
	for _, in := range build {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
			built = true
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/worker", "--mount=type=cache,target=/go/pkg/mod"} {
				if !strings.Contains(in.Args, want) {
					t.Errorf("build RUN lacks %s: %s", want, in.Args)
				}
			}
		}
	}
	if !built {
		t.Errorf("the first stage does not go build")
	}

	ep, ok := last(final, "ENTRYPOINT")
	if !ok {
		t.Fatal("no ENTRYPOINT")
	}
	entry := execForm(t, ep)
	if len(entry) != 1 || path.Base(entry[0]) != sp.Binary {
		t.Errorf("ENTRYPOINT %v, want the %s binary alone", entry, sp.Binary)
	}
	var copied bool
	for _, in := range final {
		if in.Cmd == "COPY" && strings.HasSuffix(in.Args, " "+entry[0]) && strings.HasPrefix(in.Args, "--from=") {
			copied = true
		}
	}
	if !copied {
		t.Errorf("no COPY --from puts the binary at %s", entry[0])
	}
	if cmd, ok := last(final, "CMD"); !ok || !slices.Equal(execForm(t, cmd), sp.command(t, "run")) {
		t.Errorf("CMD %v, want the run command %v", cmd.Args, sp.command(t, "run"))
	}
	if ex, ok := last(final, "EXPOSE"); !ok || ex.Args != strconv.Itoa(sp.HTTP.DefaultPort) {
		t.Errorf("EXPOSE %q, want the worker's default port %d", ex.Args, sp.HTTP.DefaultPort)
	}

	// The image's user is the one the chart runs as, so files the image
	// owns stay readable with runAsUser set.
	user, ok := last(final, "USER")
	if !ok {
		t.Fatal("no USER: the image would run as root")
	}
	d := one[*appsv1.Deployment](t, mustRender(t, nil, minimal))
	psc := d.Spec.Template.Spec.SecurityContext
	if want := strconv.FormatInt(*psc.RunAsUser, 10) + ":" + strconv.FormatInt(*psc.RunAsGroup, 10); user.Args != want {
		t.Errorf("USER %s, the chart runs as %s", user.Args, want)
	}
	for _, key := range []string{"title", "source", "version", "revision"} {
		if !slices.ContainsFunc(final, func(in instruction) bool {
			return in.Cmd == "LABEL" && strings.Contains(in.Args, "org.opencontainers.image."+key+"=")
		}) {
			t.Errorf("no OCI label org.opencontainers.image.%s", key)
		}
	}
}

// TestDockerignoreKeepsBuildInputs: .dockerignore must not drop a file the
// worker's build or the final image needs. A dropped package would fail
// `docker build` only; nothing else here would notice.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	t.Parallel()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The matcher below implements plain patterns only; extend it
		// before using these.
		if strings.HasPrefix(line, "!") || strings.Contains(line, "**") {
			t.Fatalf(".dockerignore pattern %q: negations and ** are not supported by this test", line)
		}
		patterns = append(patterns, path.Clean(strings.TrimPrefix(line, "/")))
	}
	ignored := func(rel string) string {
		// Like Docker: a pattern matching a directory drops all of it.
		for p := rel; p != "." && p != "/"; p = path.Dir(p) {
			for _, pat := range patterns {
				if ok, _ := path.Match(pat, p); ok {
					return pat
				}
			}
		}
		return ""
	}

	// The final stage's COPYs from the context, and the build's inputs.
	needed := []string{"go.mod", "go.sum"}
	stages := readDockerfile(t)
	for _, in := range stages[len(stages)-1] {
		if f := strings.Fields(in.Args); in.Cmd == "COPY" && !strings.HasPrefix(in.Args, "--") {
			for _, src := range f[:len(f)-1] {
				needed = append(needed, path.Clean(src))
			}
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,Module,GoFiles,EmbedFiles", "./cmd/worker")
	cmd.Dir = root
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, errOut.String())
	}
	dec := json.NewDecoder(&out)
	for {
		var pkg struct {
			Dir    string
			Module *struct {
				Main bool
			}
			GoFiles, EmbedFiles []string
		}
		if err := dec.Decode(&pkg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if pkg.Module == nil || !pkg.Module.Main {
			continue // the standard library and the module cache are not in the context
		}
		rel, err := filepath.Rel(root, pkg.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range slices.Concat(pkg.GoFiles, pkg.EmbedFiles) {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, f := range needed {
		if pat := ignored(f); pat != "" {
			t.Errorf(".dockerignore pattern %q drops %s, which the image build needs", pat, f)
		}
	}
	// And it keeps the context small: the chart module and git history stay out.
	for _, f := range []string{".git/HEAD", "deploy/go.mod"} {
		if ignored(f) == "" {
			t.Errorf(".dockerignore lets %s into the build context", f)
		}
	}
}
