# syntax=docker/dockerfile:1
# The factos worker image. Build from the repository root:
#   docker build -t ghcr.io/factos-go/factos-worker:dev \
#     --build-arg VERSION=dev --build-arg REVISION=$(git rev-parse HEAD) .
# See docs/deploy.md.

ARG GO_VERSION=1.26

# Build on the builder's own platform and cross-compile: no emulation.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Download modules into the cache first: this step reruns only when go.mod or
# go.sum change, not on every source edit.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    go mod download
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,target=. \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/worker ./cmd/worker

# Static binary on distroless: no shell, no package manager, uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="factos-worker" \
      org.opencontainers.image.description="factos worker: event sourcing on PostgreSQL with River jobs and Temporal workflows" \
      org.opencontainers.image.source="https://github.com/factos-go/factos" \
      org.opencontainers.image.url="https://github.com/factos-go/factos" \
      org.opencontainers.image.documentation="https://github.com/factos-go/factos/blob/main/docs/deploy.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/worker /usr/local/bin/worker
# For inspection (docker cp, image scanners, a debug container); the binary
# embeds the same files and applies those.
COPY migrations/sql/ /migrations/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/worker"]
CMD ["run"]
