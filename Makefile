# factos for Go. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

# Pinned tools, built once from the Go module proxy into a cache outside the
# repository and reused.
TOOLS               ?= $(HOME)/.cache/factos/bin
TEMPORAL_VERSION    := v1.5.1
HELM_VERSION        := v3.22.0
STATICCHECK_VERSION := v0.7.0
TEMPORAL            := $(TOOLS)/temporal-$(TEMPORAL_VERSION)/temporal
HELM                := $(TOOLS)/helm-$(HELM_VERSION)/helm
STATICCHECK         := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
export FACTOS_TEMPORAL_BIN := $(TEMPORAL)
export FACTOS_HELM_BIN := $(HELM)

# How often the concurrency suite repeats in `make test`.
REPEAT ?= 3

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z/_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: test
test: tools lint test/deploy ## Run every test; starts PostgreSQL and Temporal itself
	go test -race -count=1 ./...
	go test -count=$(REPEAT) -run 'Concurrent|CatchUp' ./eventstore
	$(MAKE) --no-print-directory test/fuzz

# Fuzzing budgets for `make test/fuzz` (and so CI), about 15s each here.
# Counts, not durations: with a duration, Go 1.26's fuzzing coordinator can
# report its own deadline as a failure, a bare "context deadline exceeded"
# with no failing input (golang/go#75804, fixed in Go 1.27); a count has no
# deadline. FUZZTIME (e.g. 10m) overrides all three, with that caveat. The
# seed corpus (f.Add and testdata/fuzz) runs in every plain `go test`.
FUZZ_EXECS_STORE   ?= 5000x
FUZZ_EXECS_PAYLOAD ?= 50000x
FUZZTIME ?=

.PHONY: test/fuzz
test/fuzz: ## Run every fuzz target for a fixed number of inputs (or FUZZTIME each)
	go test -run '^$$' -fuzz '^FuzzValidateEvents$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_EXECS_STORE)) ./eventstore
	go test -run '^$$' -fuzz '^FuzzQueryMatchesSQL$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_EXECS_STORE)) ./eventstore
	go test -run '^$$' -fuzz '^FuzzCommandPayload$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_EXECS_PAYLOAD)) ./activities

.PHONY: test/short
test/short: ## Run the Go tests once, without the race detector or repeats
	go test -count=1 ./...

# The chart tests live in their own module (deploy/go.mod) so the Kubernetes
# API types stay out of factos' dependencies; they need helm, no cluster.
.PHONY: test/deploy
test/deploy: $(HELM) ## Offline Helm chart tests
	cd deploy && go test -count=1 ./...

# Extra flags for the benchmark, e.g. BENCH_FLAGS='-scenarios hot -clients 16'.
BENCH_FLAGS ?=

.PHONY: bench
bench: $(TEMPORAL) ## Benchmark every scenario (~30 min, quiet machine); writes docs/benchmarks.{json,md,svg}
	go run ./cmd/factos-bench -out docs $(BENCH_FLAGS)

.PHONY: bench/quick
bench/quick: $(TEMPORAL) ## Smoke-run every benchmark scenario in seconds; writes to $TMPDIR/factos-bench
	go run ./cmd/factos-bench -quick -out $${TMPDIR:-/tmp}/factos-bench $(BENCH_FLAGS)

.PHONY: lint
lint: $(STATICCHECK) ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(STATICCHECK) ./...
	cd deploy && go vet ./... && $(STATICCHECK) ./...

.PHONY: tools
tools: $(TEMPORAL) $(HELM) $(STATICCHECK) ## Build the pinned tools into $(TOOLS)

$(TEMPORAL):
	GOBIN=$(dir $@) go install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_VERSION)
$(HELM):
	GOBIN=$(dir $@) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
$(STATICCHECK):
	GOBIN=$(dir $@) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# `make dev` compiles the dev tool into bin/ (ignored by git; the worker it
# builds goes next to it) and runs it with exec, so that it is make's own
# child: a SIGTERM to make reaches it (make forwards SIGTERM to its children;
# `go run` would die and leave it running), and it cleans up before make
# returns. DEV_FLAGS are its flags, e.g. DEV_FLAGS='-buyers 30 -capacity 10',
# -exit-after-demo or -screenshots docs.
DEV_BIN   := $(CURDIR)/bin/factos-dev
DEV_FLAGS ?=

.PHONY: dev
dev: ## Start PostgreSQL and Temporal (with its UI) if needed, migrate, run the worker and the demo; ^C cleans up
	@if [ -x $(DEV_BIN) ]; then echo "==> compiling the dev tool (internal/devenv/dev)"; \
	 else echo "==> compiling the dev tool (internal/devenv/dev); the first time, Go compiles its dependencies: a minute or two"; fi
	@start=$$SECONDS; mkdir -p $(dir $(DEV_BIN)) && go build -o $(DEV_BIN) ./internal/devenv/dev && echo "    done in $$((SECONDS - start))s"
	@exec $(DEV_BIN) $(DEV_FLAGS)

.PHONY: dev/screenshots
dev/screenshots: ## Run `make dev`'s demo and save screenshots of River UI and Temporal UI in docs/ (needs chromium)
	@$(MAKE) --no-print-directory dev DEV_FLAGS=-screenshots=docs

.PHONY: reliability
reliability: tools ## Fault-injection suite, long profile (larger loads)
	FACTOS_RELIABILITY=long go test -count=1 -timeout 30m -v -run . ./internal/reliability
