#!/usr/bin/env bash
# The run command (README): starts PostgreSQL, RabbitMQ and the local S3 server (installing them
# if missing), builds release binaries, runs the ingestor (webhooks on :8080), the processor
# (health and metrics on :9090) and the API with its web console (:8081), plays one simulated
# recording through them so you can see it arrive, then keeps them running until Ctrl-C.
# Settings: deploy/local/local.env; your own environment overrides it.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Assigned first: `eval "$(…)"` alone would carry on when the services could not start.
services_env="$(deploy/local/services.sh)"
eval "$services_env"
# Outside the clone, shared with the test command and deploy/local/roomtape.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/roomtape/target}"
set -a
# shellcheck source=local.env
. deploy/local/local.env
set +a

say() { echo "run: $*" >&2; }

say "building release binaries into $CARGO_TARGET_DIR/release (the first build takes several minutes)"
cargo build --release --locked --bin roomtape-ingestor --bin roomtape-processor --bin roomtape-api \
  --bin roomtape
bin="$CARGO_TARGET_DIR/release"
"$bin/roomtape-processor" migrate

pids=()
stop() {
  trap - EXIT INT TERM
  say "stopping"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT INT TERM
"$bin/roomtape-processor" & pids+=($!)
"$bin/roomtape-ingestor" & pids+=($!)
"$bin/roomtape-api" & pids+=($!)

ingestor="http://${INGESTOR_BIND}"
processor="http://${PROCESSOR_BIND}"
api="http://${API_BIND}"
ready() { curl -fsS -o /dev/null "$1/readyz" 2>/dev/null; }
deadline=$((SECONDS + 60))
until ready "$ingestor" && ready "$processor" && ready "$api"; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    say "the services are not ready after 60 s; see their logs above"
    exit 1
  fi
  sleep 0.5
done

say "playing one simulated recording through the ingestor and the processor"
if ! deploy/local/roomtape simulate; then
  say "the simulated recording did not become ready (the reason is above); the services keep running"
fi

# The first token of API_TOKENS (name:token:scope,…), for the console's prompt.
console_token=$(echo "$API_TOKENS" | cut -d, -f1 | cut -d: -f2)
cat >&2 <<NEXT

roomtape is running.
  web console               $api/   (token: $console_token)
  HTTP API                  $api/api/v1/recordings   (OpenAPI: $api/api/v1/openapi.json)
  webhook URL for LiveKit   $ingestor/webhooks/livekit   (API key $LIVEKIT_API_KEY)
  the operator tool         deploy/local/roomtape --help
  recordings                deploy/local/roomtape recordings list
  a link that plays one     deploy/local/roomtape recordings url EG_…
  check everything          deploy/local/roomtape doctor --skip livekit
  health and metrics        $ingestor/readyz  $processor/readyz  $api/readyz  $processor/metrics
Ctrl-C stops the three services.
NEXT
wait -n "${pids[@]}"
