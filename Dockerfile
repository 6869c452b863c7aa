# syntax=docker/dockerfile:1
#
# The gatewayz image: one binary on Debian slim, run as an unprivileged user.
#
#   docker build -t gatewayz:local .
#   docker run --rm -p 8080:8080 -v "$PWD/gatewayz.toml:/etc/gatewayz/gatewayz.toml:ro" gatewayz:local
#
# The same image runs the mock upstream: `docker run gatewayz:local mock-upstream --listen 0.0.0.0:9090`.
# deploy/compose.yaml builds it for the whole stack; tests/deploy.rs checks this file against it.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Cargo.toml names the benches, so their files must be there for the manifest to load.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The cache mounts keep the registry and the build directory between builds; the binary is
# copied out of the mounted target directory, which is not part of the layer.
#
# Debug info is left out of the image on purpose: the release profile keeps line tables
# (`debug = 1`) for the profiling scripts (loadtest/profile.sh), which a running gateway does
# not need. The symbol table stays (objcopy --strip-debug), so a backtrace still names
# functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin gatewayz \
    && objcopy --strip-debug target/release/gatewayz /gatewayz

FROM debian:bookworm-slim
# ca-certificates: the upstream TLS verifier reads the system roots. curl: the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# uid/gid 10001, as the Helm chart's securityContext expects. The working directory is the
# gateway's: the default SQLite ledger path (sqlite://gatewayz-ledger.db) is relative to it.
RUN groupadd --system --gid 10001 gatewayz \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/gatewayz --shell /usr/sbin/nologin gatewayz \
    && install -d -o gatewayz -g gatewayz -m 0750 /var/lib/gatewayz \
    && install -d -m 0755 /etc/gatewayz
COPY --from=builder /gatewayz /usr/local/bin/gatewayz
USER 10001:10001
WORKDIR /var/lib/gatewayz
EXPOSE 8080
# Liveness, like the orchestrators' probes: 200 while the process serves.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["gatewayz"]
CMD ["serve", "--config", "/etc/gatewayz/gatewayz.toml"]
