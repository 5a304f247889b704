#!/usr/bin/env bash
# Benchmarks the processor (docs/benchmarks.md, "Processor"): how many events per second it
# takes from a pre-filled queue into PostgreSQL (participant events of many rooms; room sessions
# with a HEAD against the local S3 server per finished recording), the delay from the
# ingestor's 200 to the row being visible at two steady rates, and a join storm.
#
# Builds the release roomtape-ingestor, roomtape-processor and roomtape-bench; creates a fresh
# RabbitMQ vhost, a fresh database (migrated with `roomtape-processor migrate`) and a fresh
# bucket on s3s-fs; then:
#   participants  with no processor running, publishes BENCH_PARTICIPANT_EVENTS participant
#           events over BENCH_PARTICIPANT_ROOMS rooms (joins, then their leaves), starts the
#           processor, and drains them as below; every room must end at 0 viewers. The
#           processor is stopped and the tables emptied before the next phase;
#   fill    with no processor running, puts the recording files in the bucket and publishes
#           BENCH_EVENTS events (room sessions of nine events: room_started, two
#           participant_joined, egress_started, egress_updated ACTIVE, participant_left,
#           egress_ended COMPLETE, participant_left, room_finished) straight to livekit.events
#           with confirms;
#   drain   starts the processor (default settings) and polls webhook_events every 250 ms until
#           it holds every event: events/s from the first row visible to the last; with
#           BENCH_PROBE=both (the default) once with RECORDING_PROBE=off, the processor stopped
#           and the tables emptied, then again with it on (fill and drain each time);
#   e2e     starts the ingestor as well, puts the run's recording files in the bucket
#           (unmeasured: LiveKit's egress writes them), and sends signed webhooks of the same kind at
#           BENCH_RATE/s for BENCH_RATE_SECONDS s (open loop); for each, the time from the 200
#           to its row being visible (one poller, every BENCH_POLL_MS ms): p50/p90/p99/max,
#           and per event type (egress_ended's row is written with its recording `ready`);
#           with BENCH_PROBE=both once with the probe off and once on (the processor restarted
#           between them); then again at BENCH_HIGH_RATE/s (probe on unless BENCH_PROBE=off);
#   storm   with a second processor: BENCH_STORM distinct signed joins for one room through the
#           ingestor at BENCH_STORM_CONCURRENCY connections, then their leaves; after each wave,
#           how long after the last 200 rooms.participant_count shows all of it;
#   notify  the drain again (fresh tables, BENCH_EVENTS events, the probe as last set), now with an HTTP endpoint
#           (`roomtape-bench sink`) in NOTIFY_ENDPOINTS taking every recording.ready: the drain
#           rate beside the plain drain's, and for each notification the time from the
#           transaction that made the recording ready to the endpoint's receipt.
# Each measured phase reports where the machine's CPU went (processor, ingestor, RabbitMQ,
# PostgreSQL, s3s-fs, the load generator, anything else). Then everything started here is stopped
# and the vhost, database and bucket are removed. Only 127.0.0.1 is contacted; about a minute of
# load after the build.
#
# Exit status: 0 when both phases ran (every event recorded, every row seen), 1 otherwise.
# Knobs (environment): BENCH_EVENTS (30000), BENCH_RATE (500), BENCH_RATE_SECONDS (30),
# BENCH_POLL_MS (5), BENCH_CONCURRENCY (64, load-generator workers), BENCH_THREADS (CPUs),
# BENCH_PARTICIPANT_EVENTS (100000), BENCH_PARTICIPANT_ROOMS (100), BENCH_HIGH_RATE (2000),
# BENCH_STORM (10000), BENCH_STORM_CONCURRENCY (256), BENCH_PROBE (both: RECORDING_PROBE off,
# then on, side by side in the drain and e2e phases; on or off: that one only),
# BENCH_PROBE_ROUNDS (1: how many times the drain and e2e phases run each probe mode, off and
# on alternating; with more than one, labels end in -r<round> and a closing summary gives each
# round's drain ratio and egress_ended p99 difference), BENCH_THUMBNAILS (off: RECORDING_THUMBNAILS
# of the processors; on adds an image look-up per ready recording, see docs/benchmarks.md),
# PROCESSOR_CONCURRENCY / PROCESSOR_PREFETCH, passed to the processor when set, and BENCH_BIN: a
# folder holding another build's roomtape-processor and roomtape-ingestor to measure in place of
# this checkout's (the load generator is always this checkout's; scripts/bench-compare.sh uses it
# to run a baseline beside the current code). Each measured phase also prints
# `CPUPER label=… processor=… ingestor=… rabbitmq=… postgres=… s3s-fs=… load=… pipeline=…`, µs
# of CPU per event (pipeline: every group but the load generator).
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS="${BENCH_EVENTS:-30000}"
RATE="${BENCH_RATE:-500}"
RATE_SECONDS="${BENCH_RATE_SECONDS:-30}"
POLL_MS="${BENCH_POLL_MS:-5}"
CONCURRENCY="${BENCH_CONCURRENCY:-64}"
THREADS="${BENCH_THREADS:-$(nproc)}"
PARTICIPANT_EVENTS="${BENCH_PARTICIPANT_EVENTS:-100000}"
PARTICIPANT_ROOMS="${BENCH_PARTICIPANT_ROOMS:-100}"
HIGH_RATE="${BENCH_HIGH_RATE:-2000}"
STORM="${BENCH_STORM:-10000}"
STORM_CONCURRENCY="${BENCH_STORM_CONCURRENCY:-256}"
case "${BENCH_PROBE:-both}" in
  both) PROBE_MODES="off on" ;;
  on | off) PROBE_MODES="$BENCH_PROBE" ;;
  *) echo "BENCH_PROBE must be both, on or off, not ${BENCH_PROBE}" >&2; exit 2 ;;
esac
probe="${PROBE_MODES##* }" # RECORDING_PROBE of the processors started (the last mode)
PROBE_ROUNDS="${BENCH_PROBE_ROUNDS:-1}"
[[ "$PROBE_ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_PROBE_ROUNDS must be a positive number, not $PROBE_ROUNDS" >&2; exit 2; }
THUMBNAILS="${BENCH_THUMBNAILS:-off}"
case "$THUMBNAILS" in on | off) ;; *) echo "BENCH_THUMBNAILS must be on or off, not $THUMBNAILS" >&2; exit 2 ;; esac
round_suffix() { [ "$PROBE_ROUNDS" -eq 1 ] || echo "-r$1"; } # round → label suffix
READY_TIMEOUT=30 # seconds, for /readyz
DRAIN_TIMEOUT=150
E2E_GRACE=30 # seconds to wait for rows after the last webhook

NAME="roomtape_bench_$$"
VHOST="roomtape-bench-$$"
BUCKET="roomtape-bench-$$"

# shellcheck source=bench-common.sh
. scripts/bench-common.sh
log "building the release ingestor, processor and roomtape-bench"
cargo build --release --locked --bin roomtape-ingestor --bin roomtape-processor \
  --bin roomtape-bench >&2
bin="$CARGO_TARGET_DIR/release"
tested="${BENCH_BIN:-$bin}" # where the processor and ingestor under test come from
for app in roomtape-processor roomtape-ingestor; do
  [ -x "$tested/$app" ] || { log "BENCH_BIN: no $app in $tested"; exit 2; }
done

admin_url="$ROOMTAPE_TEST_DATABASE_URL"
database_url="${admin_url%/*}/$NAME"
amqp_url="$ROOMTAPE_TEST_AMQP_URL/$VHOST"
# What the processor and roomtape-bench read (bench: DATABASE_URL, AMQP_URL, S3_*).
export LIVEKIT_API_KEY="$API_KEY" LIVEKIT_API_SECRET="$API_SECRET" AMQP_URL="$amqp_url" \
  DATABASE_URL="$database_url" S3_ENDPOINT="$ROOMTAPE_TEST_S3_ENDPOINT" S3_BUCKET="$BUCKET" \
  S3_ACCESS_KEY_ID="$ROOMTAPE_TEST_S3_ACCESS_KEY" S3_SECRET_ACCESS_KEY="$ROOMTAPE_TEST_S3_SECRET_KEY"

work="$(mktemp -d)"
processor_pid="" processor2_pid="" ingestor_pid="" sink_pid="" created_db="" created_vhost="" created_bucket=""
stop() { # pid
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
cleanup() {
  local status=$?
  stop "$ingestor_pid"
  stop "$processor_pid"
  stop "$processor2_pid"
  stop "$sink_pid"
  [ -z "$created_vhost" ] || mgmt -X DELETE "$MGMT/vhosts/$VHOST" >/dev/null 2>&1 || true
  [ -z "$created_db" ] || psql "$admin_url" -qtAc "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" >/dev/null 2>&1 || true
  [ -z "$created_bucket" ] || "$bin/roomtape-bench" clean-bucket >/dev/null 2>&1 || log "could not remove bucket $BUCKET"
  if [ "$status" -ne 0 ]; then
    for app in processor ingestor; do
      [ -s "$work/$app.log" ] || continue
      log "$app log (tail):"
      tail -n 20 "$work/$app.log" >&2
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_ready() { # pid, port, what
  local deadline=$((SECONDS + READY_TIMEOUT))
  until curl -fsS "http://127.0.0.1:$2/readyz" >/dev/null 2>&1; do
    kill -0 "$1" 2>/dev/null || { log "the $3 exited"; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { log "the $3 was not ready within $READY_TIMEOUT s"; exit 1; }
    sleep 0.1
  done
}

log "creating vhost $VHOST, database $NAME, bucket $BUCKET"
mgmt -X PUT "$MGMT/vhosts/$VHOST" >/dev/null
created_vhost=1
mgmt -X PUT -H 'content-type: application/json' -d '{"configure":".*","write":".*","read":".*"}' \
  "$MGMT/permissions/$VHOST/guest" >/dev/null
psql "$admin_url" -qtAc "CREATE DATABASE $NAME" >/dev/null
created_db=1
created_bucket=1 # roomtape-bench fill creates it
"$tested/roomtape-processor" migrate >&2

# CPU accounting, in clock ticks: the whole machine (non-idle), given processes, and this shell's
# reaped children (the load generator).
HZ="$(getconf CLK_TCK)"
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
snapshot() { # file, pids… → "pid ticks" lines
  local pid out="$1"
  shift
  : >"$out"
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] && awk -v pid="$pid" '{ print pid, $14 + $15 }' "/proc/$pid/stat" >>"$out" 2>/dev/null || true
  done
}
delta() { # before, after → ticks used by the processes of `after` since `before` (new: all)
  awk 'FILENAME == ARGV[1] { t[$1] = $2; next } { sum += $2 - ($1 in t ? t[$1] : 0) } END { print sum + 0 }' "$1" "$2"
}
children_ticks() { # `times` must run in this shell, not a subshell, to see its children
  times >"$work/times"
  awk -v hz="$HZ" 'NR == 2 { split($1, u, "[ms]"); split($2, s, "[ms]")
    printf "%d\n", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * hz }' "$work/times"
}
groups() { # one line per group: name pids…
  echo "processor $processor_pid $processor2_pid"
  echo "ingestor $ingestor_pid"
  echo "rabbitmq $(pgrep -x beam.smp | tr '\n' ' ')"
  echo "postgres $(pgrep -x postgres | tr '\n' ' ')"
  echo "s3s-fs $(pgrep -x s3s-fs-nodelay | tr '\n' ' ')"
}
all_ticks() { # every process now: "pid comm ticks" (comm without spaces, as in /proc/<pid>/stat)
  awk '{ print $1, $2, $14 + $15 }' /proc/[0-9]*/stat 2>/dev/null || true
}
cpu_begin() {
  all_ticks >"$work/all0"
  t0="$(date +%s.%N)" busy0="$(busy_ticks)"
  children_ticks >"$work/client0"
  groups | while read -r group pids; do
    # shellcheck disable=SC2086 # one pid per word
    snapshot "$work/cpu0.$group" $pids
  done
}
cpu_end() { # label, events
  local t1 busy1 line="" used total=0 group pids client
  t1="$(date +%s.%N)" busy1="$(busy_ticks)"
  children_ticks >"$work/client1"
  client=$(($(cat "$work/client1") - $(cat "$work/client0")))
  while read -r group pids; do
    # shellcheck disable=SC2086
    snapshot "$work/cpu1.$group" $pids
    used="$(delta "$work/cpu0.$group" "$work/cpu1.$group")"
    total=$((total + used))
    line="$line $group=$used"
  done < <(groups)
  awk -v t0="$t0" -v t1="$t1" -v hz="$HZ" -v cpus="$(nproc)" -v busy=$((busy1 - busy0)) \
    -v used="$line" -v total="$total" -v client="$client" -v label="$1" -v events="$2" 'BEGIN {
    wall = t1 - t0; pct = 100 / (wall * hz); n = split(used, parts, " ")
    out = ""; per = ""; machine = ""; pipeline = 0
    for (i = 1; i <= n; i++) { split(parts[i], kv, "="); us = kv[2] / hz * 1e6 / events
      pipeline += us; machine = machine sprintf(" %s=%.1f", kv[1], us)
      if (kv[1] == "ingestor" && kv[2] == 0) continue
      out = out sprintf("%s %.0f, ", kv[1], kv[2] * pct)
      if (kv[2] > 0) per = per sprintf("%s %.0f, ", kv[1], us) }
    other = busy - total - client; if (other < 0) other = 0
    printf "  cpu, %% of one core over %.1f s: %sload generator %.0f, other %.0f (machine %.0f%% busy of %d cores)\n",
      wall, out, client * pct, other * pct, busy * pct / cpus, cpus
    printf "  cpu per event, µs: %sload generator %.0f\n", per, client / hz * 1e6 / events
    printf "CPU label=%s other=%.0f\n", label, other * pct
    printf "CPUPER label=%s%s load=%.1f pipeline=%.1f\n", label, machine, client / hz * 1e6 / events, pipeline }' |
    tee -a "$work/results"
  # The biggest consumers outside the groups (exited processes cannot be seen).
  all_ticks >"$work/all1"
  groups | awk '{ for (i = 2; i <= NF; i++) print $i }' >"$work/known"
  awk -v hz="$HZ" -v wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '
    FILENAME == ARGV[1] { known[$1] = 1; next }
    FILENAME == ARGV[2] { t[$1] = $3; next }
    !($1 in known) { used[$2] += $3 - ($1 in t ? t[$1] : 0) }
    END { for (c in used) if (used[c] > 0) printf "%s %.1f\n", c, used[c] * 100 / (wall * hz) }' \
    "$work/known" "$work/all0" "$work/all1" | sort -k2 -rn | head -n 4 |
    awk '{ s = s sprintf("%s %s, ", $1, $2) } END { if (s != "") print "  of other, by name (% of a core): " substr(s, 1, length(s) - 2) }'
}
memory() { awk -v what="$1" '$1 == "VmRSS:" { rss = $2 } $1 == "VmHWM:" { hwm = $2 }
  END { printf "  %s memory: VmRSS %.1f MiB, VmHWM %.1f MiB\n", what, rss / 1024, hwm / 1024 }' "/proc/$2/status"; }

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rabbitmq: $(mgmt "$MGMT/overview" | grep -o '"rabbitmq_version":"[^"]*"' | cut -d'"' -f4)," \
  "postgresql: $(psql "$admin_url" -qtAc 'SHOW server_version'), synchronous_commit" \
  "$(psql "$admin_url" -qtAc 'SHOW synchronous_commit')"
bench_args=(--concurrency "$CONCURRENCY" --threads "$THREADS" --api-key "$API_KEY" --api-secret "$API_SECRET")

processor_env=() # extra settings of the processors started next (the notify phase's endpoint)
start_processor() { # port, log file → started_pid
  env "${processor_env[@]}" PROCESSOR_BIND="127.0.0.1:$1" LIVEKIT_URL=http://127.0.0.1:9 RECORDING_PROBE="$probe" \
    RECORDING_THUMBNAILS="$THUMBNAILS" RECONCILE_INTERVAL=0s RUST_LOG=info LOG_FORMAT=json \
    "$tested/roomtape-processor" >"$2" 2>&1 &
  started_pid=$!
}

# Fills the queue with no processor running, then starts one and measures the drain.
drain_phase() { # label, events, run id, extra roomtape-bench arguments…
  local label="$1" events="$2" run="$3" drain_pid
  shift 3
  log "$label: filling roomtape.events with $events events (no processor running)"
  timeout 300 "$bin/roomtape-bench" fill --requests "$events" --run-id "$run" "$@" "${bench_args[@]}" \
    | tee -a "$work/results"
  processor_port="$(free_port)"
  metrics="http://127.0.0.1:$processor_port/metrics"
  log "$label: starting the processor on 127.0.0.1:$processor_port and draining"
  cpu_begin
  timeout $((DRAIN_TIMEOUT + 30)) "$bin/roomtape-bench" drain --requests "$events" --label "$label" \
    --run-id "$run" --metrics "$metrics" --timeout "$DRAIN_TIMEOUT" "$@" >"$work/drain.out" &
  drain_pid=$!
  start_processor "$processor_port" "$work/processor.log"
  processor_pid=$started_pid
  wait "$drain_pid" || { cat "$work/drain.out"; log "the drain did not finish"; exit 1; }
  cat "$work/drain.out" | tee -a "$work/results"
  cpu_end "$label" "$events"
  memory processor "$processor_pid"
}

# --- throughput from a pre-filled queue ----------------------------------------------------------
drain_phase participants "$PARTICIPANT_EVENTS" "part$$" --participants "$PARTICIPANT_ROOMS"
left="$(psql "$database_url" -qtAc "SELECT count(*) || ' rooms, ' || COALESCE(sum(participant_count), 0) || ' viewers' FROM rooms")"
echo "  after every join and leave: $left" | tee -a "$work/results"
stop "$processor_pid"
processor_pid=""
psql "$database_url" -qtAc "TRUNCATE webhook_events, rooms, room_participants" >/dev/null

for round in $(seq "$PROBE_ROUNDS"); do
  for probe in $PROBE_MODES; do
    if [ -n "$processor_pid" ]; then # the previous mode's processor, and what it wrote
      stop "$processor_pid"
      processor_pid=""
      psql "$database_url" -qtAc "TRUNCATE webhook_events, rooms, room_participants, recordings CASCADE" >/dev/null
    fi
    drain_phase "drain-probe-$probe$(round_suffix "$round")" "$EVENTS" "fill$probe$round$$"
    echo "  recordings: $(psql "$database_url" -qtAc "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) n FROM recordings GROUP BY status) s")" | tee -a "$work/results"
  done
done

# --- end to end at a steady rate ----------------------------------------------------------------
log "starting the ingestor"
env INGESTOR_BIND=127.0.0.1:0 RUST_LOG=info LOG_FORMAT=json \
  "$tested/roomtape-ingestor" >"$work/ingestor.log" 2>&1 &
ingestor_pid=$!
port=""
deadline=$((SECONDS + READY_TIMEOUT))
until [ -n "$port" ]; do
  kill -0 "$ingestor_pid" 2>/dev/null || { log "the ingestor exited"; exit 1; }
  [ "$SECONDS" -lt "$deadline" ] || { log "the ingestor did not log its port"; exit 1; }
  port="$(grep -o '"port":[0-9]*' "$work/ingestor.log" | head -n 1 | cut -d: -f2 || true)"
  sleep 0.1
done
wait_ready "$ingestor_pid" "$port" ingestor
wait_ready "$processor_pid" "$processor_port" processor
# Puts the files the run's egress_ended events report (LiveKit's egress writes them, not part of
# what is measured), then sends the webhooks at a steady rate and measures.
e2e_phase() { # label, rate, requests, run id
  "$bin/roomtape-bench" put --requests "$3" --run-id "$4" --label "$1" | tee -a "$work/results"
  log "$1: $3 webhooks at $2/s to 127.0.0.1:$port"
  cpu_begin
  timeout $((RATE_SECONDS + E2E_GRACE + 60)) "$bin/roomtape-bench" e2e --rate "$2" \
    --requests "$3" --url "http://127.0.0.1:$port/webhooks/livekit" --metrics "$metrics" \
    --poll-ms "$POLL_MS" --timeout "$E2E_GRACE" --run-id "$4" --label "$1" \
    "${bench_args[@]}" | tee -a "$work/results"
  cpu_end "$1" "$3"
  memory processor "$processor_pid"
  memory ingestor "$ingestor_pid"
}
requests=$((RATE * RATE_SECONDS))
for round in $(seq "$PROBE_ROUNDS"); do
for mode in $PROBE_MODES; do
  label="e2e-probe-$mode$(round_suffix "$round")"
  if [ "$mode" != "$probe" ]; then # a processor of this mode in place of the running one
    stop "$processor_pid"
    probe="$mode"
    processor_port="$(free_port)"
    metrics="http://127.0.0.1:$processor_port/metrics"
    start_processor "$processor_port" "$work/processor.log"
    processor_pid=$started_pid
    wait_ready "$processor_pid" "$processor_port" processor
  fi
  e2e_phase "$label" "$RATE" "$requests" "e2e$mode$round$$"
done
done

e2e_phase "e2e-$HIGH_RATE" "$HIGH_RATE" $((HIGH_RATE * RATE_SECONDS)) "e2eh$$"

# --- a join storm, two processors ----------------------------------------------------------------
processor2_port="$(free_port)"
start_processor "$processor2_port" "$work/processor2.log"
processor2_pid=$started_pid
wait_ready "$processor2_pid" "$processor2_port" "second processor"
log "storm: $STORM joins for one room at $STORM_CONCURRENCY connections, then their leaves"
cpu_begin
timeout $((DRAIN_TIMEOUT + 30)) "$bin/roomtape-bench" storm --requests "$STORM" \
  --concurrency "$STORM_CONCURRENCY" --threads "$THREADS" --api-key "$API_KEY" \
  --api-secret "$API_SECRET" --url "http://127.0.0.1:$port/webhooks/livekit" \
  --timeout 60 --run-id "storm$$" | tee -a "$work/results"
cpu_end storm $((2 * STORM))
memory processor "$processor_pid"
memory "second processor" "$processor2_pid"
memory ingestor "$ingestor_pid"

# --- the drain with notifications POSTed to an HTTP endpoint ------------------------------------
stop "$ingestor_pid"; stop "$processor_pid"; stop "$processor2_pid"
ingestor_pid="" processor_pid="" processor2_pid=""
psql "$database_url" -qtAc "TRUNCATE webhook_events, rooms, room_participants, recordings, assets,
  notification_deliveries, notification_outbox CASCADE" >/dev/null
"$bin/roomtape-bench" sink --timeout $((DRAIN_TIMEOUT + 60)) --label notify >"$work/sink.out" &
sink_pid=$!
deadline=$((SECONDS + READY_TIMEOUT))
until grep -q '^port ' "$work/sink.out" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || { log "the sink did not say its port"; exit 1; }
  sleep 0.1
done
sink_port="$(awk '/^port / { print $2; exit }' "$work/sink.out")"
processor_env=(NOTIFY_ENDPOINTS=bench "NOTIFY_BENCH_URL=http://127.0.0.1:$sink_port/hooks"
  NOTIFY_BENCH_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw NOTIFY_BENCH_EVENTS=recording.ready)
drain_phase drain-notify "$EVENTS" "note$$"
wait "$sink_pid" || { cat "$work/sink.out"; log "no recording.ready reached the endpoint"; exit 1; }
sink_pid=""
grep -v '^port ' "$work/sink.out" | tee -a "$work/results"
ready="$(psql "$database_url" -qtAc "SELECT count(*) FROM recordings WHERE status = 'ready'")"
received="$(awk -F'received=' '/^RESULT label=notify / { split($2, v, " "); print v[1] }' "$work/sink.out")"
echo "  recordings ready: $ready, recording.ready received by the endpoint: $received" | tee -a "$work/results"
[ "$received" = "$ready" ] || { log "the endpoint received $received recording.ready for $ready ready recordings"; exit 1; }
# Beside the (last) drain of the same probe setting without an endpoint.
awk -v base="drain-probe-$probe$(round_suffix "$PROBE_ROUNDS"): " 'index($0, base) == 1 { phase = "drain" } /^drain-notify: / { phase = "notify" }
  /throughput/ { for (i = 1; i <= NF; i++) if ($i == "throughput") rate[phase] = $(i + 1) }
  END { if (rate["drain"] > 0) printf "drain rate with notifications: %.0f vs %.0f events/s without, ratio %.2f\n",
    rate["notify"], rate["drain"], rate["notify"] / rate["drain"] }' "$work/results" | tee -a "$work/results"

# The probe's cost, round by round: drain rate on/off and egress_ended -> row p99 on - off.
if [ "$PROBE_MODES" = "off on" ]; then
  echo "the probe, on beside off:"
  awk '/^RESULT label=drain-probe-/ { split($2, l, "="); n = split(l[2], p, "-"); r = (n > 3) ? p[4] : "r1"
      for (i = 3; i <= NF; i++) if ($i ~ /^throughput=/) { split($i, v, "="); drain[r, p[3]] = v[2] } rounds[r] = 1 }
    /^e2e-probe-[a-z]+(-r[0-9]+)?: [0-9]+ webhooks/ { split($1, p, "-"); sub(":", "", p[3]); sub(":", "", p[4]); mode = p[3]; r = (p[4] != "") ? p[4] : "r1" }
    /^    egress_ended: / && mode != "" { p99[r, mode] = $5 + 0; mode = "" }
    END { for (i = 1; ("r" i) in rounds; i++) { r = "r" i
        printf "  round %d: drain %.0f -> %.0f events/s, ratio %.2f; egress_ended -> row p99 %.1f -> %.1f ms, %+.1f ms\n",
          i, drain[r, "off"], drain[r, "on"], drain[r, "on"] / drain[r, "off"], p99[r, "off"], p99[r, "on"], p99[r, "on"] - p99[r, "off"] } }' \
    "$work/results" | tee -a "$work/results"
fi

echo "processor messages by outcome:"
curl -fsS "$metrics" | grep '^roomtape_messages_total{queue="roomtape.events"' | sed 's/^/  /' || true
dead="$(mgmt "$MGMT/queues/$VHOST/roomtape.dead?columns=name,messages" | grep -o '"messages":[0-9]*' | head -n 1 | cut -d: -f2 || true)"
echo "roomtape.dead: ${dead:-?} messages"

other_max="$(awk '$1 == "CPU" { split($3, kv, "="); if (kv[2] > max) max = kv[2] } END { print max + 0 }' "$work/results")"
if [ "$other_max" -gt 15 ]; then
  echo "WARNING other processes used up to $other_max% of a core during a phase: the figures are not reliable"
fi
