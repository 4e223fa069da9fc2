// Package deploy holds the offline tests of the factos-worker Helm chart
// (helm/factos-worker) and of the container image's Dockerfile.
//
// It is a module of its own so that the Kubernetes API types it decodes the
// rendered manifests into stay out of the factos module's dependencies. The
// tests need no cluster and no network: they run helm lint and helm template,
// decode every rendered object strictly into its API type, and check the
// chart against the contract the real worker binary prints (`worker spec`).
//
// The Grafana dashboard (helm/factos-worker/dashboards) and the alert rules
// are checked the same way: every query parses as PromQL and reads only
// metrics the worker serves, listed in worker-metrics.json (a factosfx test
// keeps that file equal to the worker's Prometheus registry), with labels
// those metrics have; and each alert is evaluated by Prometheus' own engine
// against series where it must fire and series where it must not.
//
// Run them with `make test/deploy`, or `cd deploy && go test ./...`. Helm is
// taken from FACTOS_HELM_BIN, else ~/.cache/factos/bin/helm-v3.22.0/helm, and
// is built there with `go install` when missing.
package deploy
