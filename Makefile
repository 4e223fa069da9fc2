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

# How long each fuzz target runs in `make test/fuzz` (and so in CI). The
# seed corpus (f.Add and testdata/fuzz) runs in every plain `go test`.
FUZZTIME ?= 15s

.PHONY: test/fuzz
test/fuzz: ## Run every fuzz target for FUZZTIME (15s) each
	go test -run '^$$' -fuzz '^FuzzValidateEvents$$' -fuzztime $(FUZZTIME) ./eventstore
	go test -run '^$$' -fuzz '^FuzzQueryMatchesSQL$$' -fuzztime $(FUZZTIME) ./eventstore
	go test -run '^$$' -fuzz '^FuzzCommandPayload$$' -fuzztime $(FUZZTIME) ./activities

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

.PHONY: dev
dev: ## Start PostgreSQL and Temporal if needed, migrate, run the worker and the demo; ^C cleans up
	go run ./internal/devenv/dev

.PHONY: reliability
reliability: tools ## Fault-injection suite, long profile (larger loads)
	FACTOS_RELIABILITY=long go test -count=1 -timeout 30m -v -run . ./internal/reliability
