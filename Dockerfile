# The jetflow binary, static (CGO_ENABLED=0), in a distroless image that runs as a non-root user
# (65532) and holds nothing but the binary, CA certificates and time zone data. Build it from the
# repository root:
#
#   docker build -t ghcr.io/jetflow-dev/jetflow:v0.1.0 --build-arg VERSION=v0.1.0 .
#
# The Kubernetes manifests in deploy/ run it with a read-only root filesystem and every
# capability dropped; jetflow writes nothing to disk outside `jetflow dev`'s --data.
#
# Your own worker (your orchestrators and activities, built on the SDK) is built the same way:
# replace ./cmd/jetflow with your main package (README.md, "Deploy").
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/jetflow ./cmd/jetflow

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/jetflow /usr/local/bin/jetflow
# nonroot:nonroot; numeric, so that Kubernetes' runAsNonRoot can check it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/jetflow"]
