#!/usr/bin/env bash
# The run command (README): starts the services, migrates the database, and runs the ingestor
# (webhooks on :8080) and the processor (health and metrics on :9090) until Ctrl-C.
# Settings come from deploy/local/local.env; a .env in the repository root overrides nothing
# set here, and your own environment overrides both.
set -euo pipefail
cd "$(dirname "$0")/../.."
eval "$(deploy/local/services.sh)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/roomtape/target}"

set -a
# shellcheck source=local.env
. deploy/local/local.env
set +a
export DATABASE_URL="${DATABASE_URL:-$ROOMTAPE_LOCAL_DATABASE_URL}"
export S3_ACCESS_KEY_ID="${S3_ACCESS_KEY_ID:-$ROOMTAPE_TEST_S3_ACCESS_KEY}"
export S3_SECRET_ACCESS_KEY="${S3_SECRET_ACCESS_KEY:-$ROOMTAPE_TEST_S3_SECRET_KEY}"

echo "run: building roomtape" >&2
cargo build --locked --bin roomtape-ingestor --bin roomtape-processor
bin="$CARGO_TARGET_DIR/debug"
"$bin/roomtape-processor" migrate

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; }
trap stop EXIT INT TERM
"$bin/roomtape-processor" & pids+=($!)
"$bin/roomtape-ingestor" & pids+=($!)
echo "run: ingestor on http://127.0.0.1:${INGESTOR_BIND##*:}/webhooks/livekit, processor metrics on http://127.0.0.1:${PROCESSOR_BIND##*:}/metrics; Ctrl-C stops both" >&2
wait -n "${pids[@]}"
