#!/usr/bin/env bash
# The test command (README): starts PostgreSQL, RabbitMQ and s3s-fs if they are not running
# (installing them if missing), cross-checks the webhook test vectors with the official LiveKit
# SDKs (tests/fixtures/livekit/crosscheck.sh), checks the deployment files (deploy/validate.sh),
# runs every test of the workspace against them, then the short fault-and-load suite
# (scripts/reliability.sh --short, on servers of its own).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Assigned first: `eval "$(…)"` alone would carry on when the services could not start.
services_env="$(deploy/local/services.sh)"
eval "$services_env"
if [ "${ROOMTAPE_SKIP_CROSSCHECK:-}" = 1 ]; then
  echo "test: ROOMTAPE_SKIP_CROSSCHECK=1, skipping the official-SDK cross-check of the webhook vectors" >&2
else
  tests/fixtures/livekit/crosscheck.sh
fi
if [ "${ROOMTAPE_SKIP_DEPLOY_VALIDATION:-}" = 1 ]; then
  echo "test: ROOMTAPE_SKIP_DEPLOY_VALIDATION=1, skipping the deployment files' checks" >&2
else
  deploy/validate.sh
fi
# Outside the clone, so a fresh clone reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/roomtape/target}"
# The integration tests spend their time waiting on the broker, the database and timers, and
# each has a vhost, database and bucket of its own: eight at once take 55 s where two (one per
# core, libtest's default here) took 86 s; more than eight gain nothing, the longest test being
# the bound (docs/benchmarks.md, "Where a cold test run's time went").
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-8}"
echo "test: building and running the tests (target dir $CARGO_TARGET_DIR)" >&2
output="$(mktemp)"
trap 'rm -f "$output"' EXIT
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$output"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace: cargo ends with its last crate's (doc) tests.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$output"
if [ "${ROOMTAPE_SKIP_RELIABILITY:-}" = 1 ]; then
  echo "test: ROOMTAPE_SKIP_RELIABILITY=1, skipping the short fault-and-load suite" >&2
elif [ "$status" = 0 ]; then
  echo "test: the short fault-and-load suite (scripts/reliability.sh --short)" >&2
  scripts/reliability.sh --short || status=$?
fi
exit "$status"
