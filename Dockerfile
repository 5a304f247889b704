# syntax=docker/dockerfile:1
# One image with every roomtape binary; the container's command picks the process:
#   roomtape-ingestor | roomtape-processor [run|migrate] | roomtape-api | roomtape (the CLI)
# docker build -t roomtape .   (docker-compose.yml and deploy/kubernetes use this image)
# and the processor's image, the same binaries plus ffmpeg (thumbnails of recordings started
# outside roomtape):
# docker build --target processor -t roomtape-processor .

# Builder and runtime share Debian 12 (bookworm), so the binaries link the glibc they run with.
FROM rust:1.95-slim-bookworm AS chef
# cargo-chef turns the workspace's manifests into a recipe, so the dependencies compile in a layer
# of their own that is rebuilt only when a Cargo.toml or Cargo.lock changes, not on every edit.
RUN cargo install cargo-chef --version 0.1.77 --locked
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# The four binaries of the image, and nothing of the tests' and benchmarks' dependencies.
ARG BINARIES="--bin roomtape-ingestor --bin roomtape-processor --bin roomtape-api --bin roomtape"
COPY --from=planner /src/recipe.json recipe.json
# hadolint ignore=SC2086
RUN cargo chef cook --release --locked --recipe-path recipe.json ${BINARIES}
COPY . .
# hadolint ignore=SC2086
RUN cargo build --release --locked ${BINARIES}

# The health checks' HTTP probe: the runtime image has no shell, curl or wget, and a static
# busybox (1 MiB, no libraries) gives `busybox wget`, which exits non-zero on a 503 from /readyz.
FROM debian:bookworm-slim AS probe
# Unpinned on purpose: Debian's security updates replace the version within the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox-static \
 && rm -rf /var/lib/apt/lists/*

# The processor's image: Debian's ffmpeg, which takes a frame of a recording roomtape did not
# start (README, "Thumbnails"), with the libraries it links; Debian 12 like the builder, so the
# binaries find the glibc they were linked with. ffmpeg writes the JPEG to a pipe: the file
# system may stay read-only. `roomtape doctor` (in the image too) checks it runs.
FROM debian:bookworm-slim AS processor
# Unpinned on purpose, as above: security updates replace the version within the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=probe /bin/busybox /usr/local/bin/busybox
COPY --from=builder \
  /src/target/release/roomtape-processor \
  /src/target/release/roomtape \
  /usr/local/bin/
USER 65532:65532
# PROCESSOR_BIND's default.
EXPOSE 9090
CMD ["roomtape-processor"]

# distroless/cc: glibc, libgcc, CA certificates (TLS to LiveKit, R2, amqps) and a nonroot user,
# nothing else; about 25 MiB with the binaries.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=probe /bin/busybox /usr/local/bin/busybox
COPY --from=builder \
  /src/target/release/roomtape-ingestor \
  /src/target/release/roomtape-processor \
  /src/target/release/roomtape-api \
  /src/target/release/roomtape \
  /usr/local/bin/
# Numeric, so Kubernetes' runAsNonRoot can verify it (distroless's nonroot is 65532).
USER 65532:65532
# INGESTOR_BIND, API_BIND, PROCESSOR_BIND defaults.
EXPOSE 8080 8081 9090
# No HEALTHCHECK here: each process listens on its own port, so docker-compose.yml declares one
# per service (busybox wget on /readyz) and Kubernetes probes /healthz and /readyz itself.
CMD ["roomtape", "--help"]
