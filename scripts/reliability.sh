#!/usr/bin/env bash
# The fault-and-load suite (docs/reliability.md): builds roomtape's binaries and the suite, then
# runs it against a RabbitMQ node, a PostgreSQL cluster and an S3 server of its own, on free
# ports, so nothing the machine shares is restarted. `--short` is the version the test command
# runs (a few hundred events); without it, thousands. Logs and data stay in the work dir
# (printed at the end); ROOMTAPE_RELIABILITY_DIR chooses it.
set -euo pipefail
cd "$(dirname "$0")/.."
# The installs (RabbitMQ, PostgreSQL, s3s-fs); the shared servers are only started, never touched.
# Assigned first: `eval "$(…)"` alone would carry on when the services could not start.
services_env="$(deploy/local/services.sh)"
eval "$services_env"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/roomtape/target}"
# Every binary, with the tests' features (`--tests` turns on the dev-dependencies' features, such
# as tokio's test-util): after `cargo test --workspace` this reuses its artifacts, where building
# the three binaries alone compiled tokio and everything above it again (4 min of a cold CI run).
cargo build --locked --workspace --bins --tests >&2
work_dir="${ROOMTAPE_RELIABILITY_DIR:-$(mktemp -d /tmp/roomtape-reliability.XXXXXX)}"
echo "reliability: servers' data and every log in $work_dir" >&2
status=0
"$CARGO_TARGET_DIR/debug/roomtape-reliability" --bin-dir "$CARGO_TARGET_DIR/debug" \
  --work-dir "$work_dir" "$@" || status=$?
if [ "$status" = 0 ] && [ -z "${ROOMTAPE_RELIABILITY_DIR:-}" ]; then
  rm -rf "$work_dir" # passed: the logs have been checked; keep them only when asked to
else
  echo "reliability: kept $work_dir (summary.md, *.log)" >&2
fi
exit "$status"
