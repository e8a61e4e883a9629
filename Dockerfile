# The jina-rs image: `jina` as the entrypoint, run as a non-root user, with a health check.
#
# With a registry (the usual case), build everything from official images:
#   docker build -t jina-rs .
# Without one, `deploy/build-image` makes the base from Debian's packages (debootstrap +
# docker import) and builds the `prebuilt` stage from a binary made beforehand:
#   docker build --build-arg BASE=jina-rs/debian:bookworm --target prebuilt -t jina-rs CONTEXT
# where CONTEXT is a folder holding only `jina` (see docs/deploy.md). The stages are in this
# order so that the classic builder, which builds every stage up to its --target, never
# reaches the Rust toolchain's image for a prebuilt binary.

ARG BASE=debian:bookworm-slim

FROM ${BASE} AS runtime
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/jina jina \
 && install -d -o jina -g jina /workspace
# Where `jina export` puts an executor's workspace, on a volume it declares: a new volume
# takes this folder's owner, so the executor (not root) can write its index there.
WORKDIR /home/jina
# The port this container serves on: what `jina ping` below checks, and where the Flow's
# `docker://` executors and `jina export`'s services are told to listen.
ENV JINA_PORT=8080
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=3 CMD ["jina", "ping"]
USER jina
ENTRYPOINT ["jina"]
CMD ["--help"]

# A binary built beforehand, from a context holding only `jina`.
FROM runtime AS prebuilt
COPY jina /usr/local/bin/jina

# The binary built from source.
FROM rust:1-slim-bookworm AS compiled
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin jina \
 && install -D -m 0755 target/release/jina /out/jina

FROM runtime
COPY --from=compiled /out/jina /usr/local/bin/jina
