#!/usr/bin/env bash
# Benchmarks the ingestor against publishing straight to RabbitMQ (docs/benchmarks.md).
#
# Builds the release ingestor and roomtape-bench, starts the ingestor on a free port against a
# fresh RabbitMQ vhost, and runs, all at the same concurrency (64 workers):
#   baseline-N     the same messages published straight to livekit.events with confirms, closed
#                  loop, over one confirm channel (the ingestor's arrangement before its pool);
#   pool-N         the same over BENCH_CHANNELS confirm channels (the ingestor's pool size): the
#                  reference throughput the ingestor is held to;
#   ingestor-N     signed webhooks (each a distinct event) to the ingestor, closed loop;
#   node-N         the same webhooks to the receiver teams write by hand (bench/node-peer: the
#                  official livekit-server-sdk WebhookReceiver and amqplib on a confirm channel,
#                  installed with npm ci outside the clone), closed loop;
#                  the phases alternate for BENCH_ROUNDS rounds, and each ratio is the median of
#                  the rounds' ratios: the machine's speed drifts (other tenants of the host,
#                  "steal"), and alternating keeps each pair under the same conditions;
#   baseline-rate  the same messages, open loop at a fixed 2,000 requests/s: the broker's own p99;
#   ingestor-rate  webhooks, open loop at 2,000 requests/s, for the p99 target;
#   storm          a join storm: BENCH_STORM (10,000) distinct participant webhooks at
#                  BENCH_STORM_CONCURRENCY (256) connections, closed loop; the time to accept all.
# CPU per message: the ingestor's CPU per accepted webhook over RabbitMQ's CPU per message in the
# same ingestor phase (target <= 0.25 x, issue 35), and over the Node receiver's CPU per accepted
# webhook in the same round (target <= 0.25 x).
# The closed-loop rounds send 3 x 100,000 webhooks, so the ingestor's dedupe table (250,000
# ids) is full for the fixed-rate run and its peak RSS includes it. roomtape.events is purged
# after each phase (nothing consumes it). The ingestor's peak RSS is its kernel-kept high-water
# mark (VmHWM), read after each phase. Each phase also reports where the machine's CPU went: the
# ingestor, RabbitMQ (beam.smp), the load generator, anything else running, and the time the
# hypervisor took away (steal); either of the last two makes the figures unreliable. Then the
# ingestor is stopped and the vhost deleted. Only 127.0.0.1 is contacted; about three minutes of
# load after the build.
#
# Exit status: 0 when every target is met, 3 when the benchmark ran but missed one, 1 on error.
# Knobs (environment): BENCH_CONCURRENCY (64), BENCH_ROUNDS (3), BENCH_REQUESTS (100000 per
# closed-loop phase), BENCH_WARMUP (2000), BENCH_RATE (2000), BENCH_RATE_SECONDS (30),
# BENCH_THREADS (client threads, default: CPUs), BENCH_WORKERS (the ingestor's INGESTOR_WORKERS;
# default: the CPUs the ingestor may use), BENCH_CHANNELS (the ingestor's
# INGESTOR_PUBLISH_CHANNELS and the pool baseline's channels; default: the workers),
# BENCH_STORM (10000), BENCH_STORM_CONCURRENCY (256), BENCH_BIN (a folder holding another build's
# roomtape-ingestor to measure in place of this checkout's; the load generator is always this
# checkout's).
# Pinning, for a machine with more cores (taskset CPU lists, e.g. 0-5; unset = not pinned):
# BENCH_BROKER_CPUS pins every thread of the running RabbitMQ (beam.smp) and restores it to all
# CPUs at the end; BENCH_INGESTOR_CPUS and BENCH_LOAD_CPUS start the ingestor and the load
# generator under taskset. E.g. on 16 cores:
#   BENCH_BROKER_CPUS=0-5 BENCH_INGESTOR_CPUS=6-9 BENCH_LOAD_CPUS=10-15 \
#     BENCH_CONCURRENCY=256 ./scripts/bench-ingestor.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CONCURRENCY="${BENCH_CONCURRENCY:-64}"
ROUNDS="${BENCH_ROUNDS:-3}"
REQUESTS="${BENCH_REQUESTS:-100000}"
WARMUP="${BENCH_WARMUP:-2000}"
RATE="${BENCH_RATE:-2000}"
RATE_SECONDS="${BENCH_RATE_SECONDS:-30}"
BROKER_CPUS="${BENCH_BROKER_CPUS:-}"
INGESTOR_CPUS="${BENCH_INGESTOR_CPUS:-}"
LOAD_CPUS="${BENCH_LOAD_CPUS:-}"
pinned() { # cpu list, command… → the command, under taskset when a list is given
  local cpus="$1"
  shift
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}
# The defaults follow the pinning: threads and workers as many as the CPUs each may use.
THREADS="${BENCH_THREADS:-$(pinned "$LOAD_CPUS" nproc)}"
WORKERS="${BENCH_WORKERS:-$(pinned "$INGESTOR_CPUS" nproc)}"
CHANNELS="${BENCH_CHANNELS:-$WORKERS}"
STORM="${BENCH_STORM:-10000}"
STORM_CONCURRENCY="${BENCH_STORM_CONCURRENCY:-256}"
PHASE_TIMEOUT=120 # seconds, per bench run
READY_TIMEOUT=30  # seconds, for the ingestor's /readyz
SETTLE=3          # seconds between phases, for the broker to finish the purge

VHOST="roomtape-bench-$$"

# shellcheck source=bench-common.sh
. scripts/bench-common.sh
log "building the release ingestor and roomtape-bench"
cargo build --release --locked --bin roomtape-ingestor --bin roomtape-bench >&2
bin="$CARGO_TARGET_DIR/release"
tested="${BENCH_BIN:-$bin}" # where the ingestor under test comes from
[ -x "$tested/roomtape-ingestor" ] || { log "BENCH_BIN: no roomtape-ingestor in $tested"; exit 1; }

work="$(mktemp -d)"
ingestor_pid=""
node_pid=""
cleanup() {
  local status=$?
  local pid
  for pid in "$ingestor_pid" "$node_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  mgmt -X DELETE "$MGMT/vhosts/$VHOST" >/dev/null 2>&1 || true
  if [ -n "$BROKER_CPUS" ]; then
    for pid in $(pgrep -x beam.smp || true); do
      taskset -a -p -c "0-$(($(nproc --all) - 1))" "$pid" >/dev/null 2>&1 || true
    done
  fi
  if [ "$status" -ne 0 ] && [ "$status" -ne 3 ] && [ -s "$work/ingestor.log" ]; then
    log "ingestor log (tail):"
    tail -n 20 "$work/ingestor.log" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

log "creating vhost $VHOST"
mgmt -X PUT "$MGMT/vhosts/$VHOST" >/dev/null
mgmt -X PUT -H 'content-type: application/json' -d '{"configure":".*","write":".*","read":".*"}' \
  "$MGMT/permissions/$VHOST/guest" >/dev/null
amqp_url="amqp://guest:guest@127.0.0.1:5672/$VHOST"

if [ -n "$BROKER_CPUS" ]; then
  for pid in $(pgrep -x beam.smp); do
    log "pinning RabbitMQ (pid $pid) to CPUs $BROKER_CPUS"
    taskset -a -p -c "$BROKER_CPUS" "$pid" >/dev/null
  done
fi

log "starting the ingestor ($WORKERS workers, $CHANNELS publish channels${INGESTOR_CPUS:+, CPUs $INGESTOR_CPUS})"
# Not through `pinned`: a function run in the background is a subshell, and $! would be its pid
# rather than the ingestor's.
ingestor_prefix=()
[ -z "$INGESTOR_CPUS" ] || ingestor_prefix=(taskset -c "$INGESTOR_CPUS")
${ingestor_prefix[@]+"${ingestor_prefix[@]}"} env LIVEKIT_API_KEY="$API_KEY" LIVEKIT_API_SECRET="$API_SECRET" \
  AMQP_URL="$amqp_url" INGESTOR_BIND=127.0.0.1:0 INGESTOR_WORKERS="$WORKERS" \
  INGESTOR_PUBLISH_CHANNELS="$CHANNELS" \
  RUST_LOG=info LOG_FORMAT=json \
  "$tested/roomtape-ingestor" >"$work/ingestor.log" 2>&1 &
ingestor_pid=$!

port=""
deadline=$((SECONDS + READY_TIMEOUT))
until [ -n "$port" ] && curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
  kill -0 "$ingestor_pid" 2>/dev/null || { log "the ingestor exited"; exit 1; }
  [ "$SECONDS" -lt "$deadline" ] || { log "the ingestor was not ready within $READY_TIMEOUT s"; exit 1; }
  [ -n "$port" ] || port="$(grep -o '"port":[0-9]*' "$work/ingestor.log" | head -n 1 | cut -d: -f2 || true)"
  sleep 0.2
done
base="http://127.0.0.1:$port"
log "ingestor ready on $base (pid $ingestor_pid)"

# The Node receiver: its locked packages in a prefix outside the clone, reinstalled when the
# lock changes; the script runs from that prefix, where its imports resolve.
node_prefix="${XDG_CACHE_HOME:-$HOME/.cache}/roomtape/node-peer"
node_stamp="$(cat bench/node-peer/package.json bench/node-peer/package-lock.json | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$node_prefix/.roomtape-installed" 2>/dev/null)" != "$node_stamp" ]; then
  log "installing the Node receiver's packages into $node_prefix (npm ci)"
  rm -rf "$node_prefix"
  mkdir -p "$node_prefix"
  cp bench/node-peer/package.json bench/node-peer/package-lock.json "$node_prefix/"
  (cd "$node_prefix" && npm ci --ignore-scripts --no-audit --no-fund --no-progress --loglevel=error >&2)
  echo "$node_stamp" >"$node_prefix/.roomtape-installed"
fi
cp bench/node-peer/receiver.mjs "$node_prefix/"
${ingestor_prefix[@]+"${ingestor_prefix[@]}"} env LIVEKIT_API_KEY="$API_KEY" LIVEKIT_API_SECRET="$API_SECRET" \
  AMQP_URL="$amqp_url" node "$node_prefix/receiver.mjs" >"$work/node.log" 2>&1 &
node_pid=$!
node_port=""
deadline=$((SECONDS + READY_TIMEOUT))
until [ -n "$node_port" ]; do
  kill -0 "$node_pid" 2>/dev/null || { log "the Node receiver exited:"; cat "$work/node.log" >&2; exit 1; }
  [ "$SECONDS" -lt "$deadline" ] || { log "the Node receiver did not listen within $READY_TIMEOUT s"; exit 1; }
  node_port="$(grep -o '"port":[0-9]*' "$work/node.log" | head -n 1 | cut -d: -f2 || true)"
  sleep 0.2
done
log "Node receiver ready on 127.0.0.1:$node_port (pid $node_pid, Node $(node --version))"
# Whose CPU a phase measures as the receiver's: the ingestor's, or the Node receiver's.
receiver_pid="$ingestor_pid"

status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$ingestor_pid/status"; }
memory() { echo "memory $1: VmRSS $(status_kb VmRSS) kB, VmHWM $(status_kb VmHWM) kB"; }
purge() {
  mgmt -X DELETE "$MGMT/queues/$VHOST/roomtape.events/contents" >/dev/null
  sleep "$SETTLE"
}

# CPU accounting, in clock ticks: the whole machine (non-idle), the ingestor, RabbitMQ's beam.smp,
# and this shell's reaped children (the load generator).
HZ="$(getconf CLK_TCK)"
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
steal_ticks() { awk '$1 == "cpu" { print $9 }' /proc/stat; }
pid_ticks() { # pids… → utime + stime
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] && total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo "$total"
}
beam_pids() { pgrep -x beam.smp || true; }
children_ticks() { # `times` must run in this shell, not a subshell, to see its children
  times >"$work/times"
  awk -v hz="$HZ" 'NR == 2 { split($1, u, "[ms]"); split($2, s, "[ms]")
    printf "%d\n", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * hz }' "$work/times"
}

bench() { # label, mode, options…
  local label="$1" mode="$2"
  shift 2
  local t0 busy0 steal0 ingestor0 beam0 client0 t1 busy1 steal1 ingestor1 beam1 client1
  # shellcheck disable=SC2046 # one pid per word
  t0="$(date +%s.%N)" busy0="$(busy_ticks)" steal0="$(steal_ticks)" \
    ingestor0="$(pid_ticks "$receiver_pid")" beam0="$(pid_ticks $(beam_pids))"
  children_ticks >"$work/client0"
  pinned "$LOAD_CPUS" timeout "$PHASE_TIMEOUT" "$bin/roomtape-bench" "$mode" --label "$label" \
    --concurrency "$CONCURRENCY" --threads "$THREADS" --api-key "$API_KEY" \
    --api-secret "$API_SECRET" "$@" | tee -a "$work/results"
  children_ticks >"$work/client1"
  # shellcheck disable=SC2046
  t1="$(date +%s.%N)" busy1="$(busy_ticks)" steal1="$(steal_ticks)" \
    ingestor1="$(pid_ticks "$receiver_pid")" beam1="$(pid_ticks $(beam_pids))"
  client0="$(cat "$work/client0")" client1="$(cat "$work/client1")"
  awk -v t0="$t0" -v t1="$t1" -v hz="$HZ" -v cpus="$(nproc)" \
    -v busy=$((busy1 - busy0)) -v ing=$((ingestor1 - ingestor0)) -v beam=$((beam1 - beam0)) \
    -v client=$((client1 - client0)) -v steal=$((steal1 - steal0)) -v label="$label" \
    -v results="$work/results" 'BEGIN {
    wall = t1 - t0; pct = 100 / (wall * hz); other = busy - ing - beam - client; if (other < 0) other = 0
    printf "  cpu, %% of one core over %.1f s: receiver %.0f, rabbitmq %.0f, load generator %.0f, other %.0f, steal %.0f (machine %.0f%% busy of %d cores)\n",
      wall, ing * pct, beam * pct, client * pct, other * pct, steal * pct, busy * pct / cpus, cpus
    printf "CPU label=%s other=%.0f steal=%.0f ingestor_ticks=%d beam_ticks=%d\n", label, other * pct, steal * pct, ing, beam >> results }'
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rabbitmq: $(mgmt "$MGMT/overview" | grep -o '"rabbitmq_version":"[^"]*"' | cut -d'"' -f4)"
memory idle

for round in $(seq 1 "$ROUNDS"); do
  bench "baseline-$round" direct --amqp "$amqp_url" --warmup "$WARMUP" --requests "$REQUESTS"
  purge
  bench "pool-$round" direct --amqp "$amqp_url" --channels "$CHANNELS" --warmup "$WARMUP" \
    --requests "$REQUESTS"
  purge
  bench "ingestor-$round" ingestor --url "$base/webhooks/livekit" --warmup "$WARMUP" \
    --requests "$REQUESTS"
  purge
  receiver_pid="$node_pid"
  bench "node-$round" ingestor --url "http://127.0.0.1:$node_port/" --warmup "$WARMUP" \
    --requests "$REQUESTS"
  receiver_pid="$ingestor_pid"
  purge
done
memory "after the closed-loop rounds"
bench baseline-rate direct --amqp "$amqp_url" --rate "$RATE" --requests "$((RATE * RATE_SECONDS))"
purge
bench ingestor-rate ingestor --url "$base/webhooks/livekit" --rate "$RATE" \
  --requests "$((RATE * RATE_SECONDS))"
purge
memory "after ingestor-rate"
bench storm ingestor --url "$base/webhooks/livekit" --concurrency "$STORM_CONCURRENCY" \
  --requests "$STORM"
purge
echo "ingestor requests by outcome:"
curl -fsS "$base/metrics" | grep '^roomtape_webhook_requests_total' | sed 's/^/  /' || true

peak_kb="$(status_kb VmHWM)"
field() { # label, key → value from that run's RESULT line
  awk -v label="label=$1" -v key="$2" '$1 == "RESULT" && $2 == label {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) print kv[2] } }' "$work/results"
}
echo "closed-loop rounds (throughput, requests/s; ratios: ingestor / one channel, ingestor / pool of $CHANNELS):"
for round in $(seq 1 "$ROUNDS"); do
  one_tp="$(field "baseline-$round" throughput)" pool_tp="$(field "pool-$round" throughput)"
  ingestor_tp="$(field "ingestor-$round" throughput)"
  awk -v r="$round" -v b="$one_tp" -v p="$pool_tp" -v i="$ingestor_tp" -v ratios="$work/ratios" 'BEGIN {
    printf "  round %d: one channel %.0f, pool %.0f, ingestor %.0f, ratios %.3f / %.3f\n", r, b, p, i, i / b, i / p
    printf "%.4f %.4f %.0f %.0f %.0f\n", i / p, i / b, p, b, i >> ratios }'
done
# The median round (by the pool ratio): its ratios and throughputs for the report.
read -r ratio ratio_one baseline baseline_one ingestor_max < <(sort -n "$work/ratios" |
  awk '{ r[NR] = $0 } END { print r[int((NR + 1) / 2)] }')
# CPU per message in each ingestor round: the ingestor's ticks per accepted webhook over
# RabbitMQ's ticks per message of the same phase; the median round.
cpu_ratio="$(for round in $(seq 1 "$ROUNDS"); do
  awk -v label="label=ingestor-$round" '$1 == "CPU" && $2 == label {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    if (v["beam_ticks"] > 0) printf "%.3f\n", v["ingestor_ticks"] / v["beam_ticks"] }' "$work/results"
done | sort -n | awk '{ r[NR] = $0 } END { print r[int((NR + 1) / 2)] + 0 }')"
# CPU per accepted webhook, the ingestor's over the Node receiver's, in each round; the median.
ticks_per_ok() { # label → receiver ticks per accepted webhook
  awk -v label="label=$1" -v ok="$(field "$1" ok)" '$1 == "CPU" && $2 == label {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "ingestor_ticks") t = kv[2] }
    if (ok > 0) printf "%.6f\n", t / ok }' "$work/results"
}
echo "CPU per accepted webhook (µs), ingestor beside the Node receiver:"
for round in $(seq 1 "$ROUNDS"); do
  awk -v r="$round" -v i="$(ticks_per_ok "ingestor-$round")" -v n="$(ticks_per_ok "node-$round")" \
    -v hz="$HZ" -v tp_i="$(field "ingestor-$round" throughput)" -v tp_n="$(field "node-$round" throughput)" \
    -v ratios="$work/node_ratios" 'BEGIN {
    printf "  round %d: ingestor %.0f µs (%.0f req/s), Node %.0f µs (%.0f req/s), ratio %.3f\n",
      r, i * 1e6 / hz, tp_i, n * 1e6 / hz, tp_n, (n > 0 ? i / n : 0)
    if (n > 0) printf "%.4f\n", i / n >> ratios }'
done
node_ratio="$(sort -n "$work/node_ratios" | awk '{ r[NR] = $0 } END { print r[int((NR + 1) / 2)] + 0 }')"
storm_s="$(field storm elapsed_s)"
storm_failed="$(field storm failed)"
rate_p99="$(field ingestor-rate p99_ms)"
rate_achieved="$(field ingestor-rate throughput)"
baseline_p99="$(field baseline-rate p99_ms)"

worst() { # key of the CPU lines → the largest value over the phases
  awk -v key="$1" '$1 == "CPU" { for (i = 3; i <= NF; i++) { split($i, kv, "=");
    if (kv[1] == key && kv[2] > max) max = kv[2] } } END { print max + 0 }' "$work/results"
}
awk -v ratio="$ratio" -v base="$baseline" -v ing="$ingestor_max" -v rounds="$ROUNDS" \
  -v ratio_one="$ratio_one" -v base_one="$baseline_one" -v channels="$CHANNELS" \
  -v cpu_ratio="$cpu_ratio" -v storm_s="$storm_s" -v storm_failed="$storm_failed" \
  -v storm="$STORM" -v storm_c="$STORM_CONCURRENCY" \
  -v p99="$rate_p99" -v achieved="$rate_achieved" -v rate="$RATE" -v peak="$peak_kb" \
  -v base_p99="$baseline_p99" -v node_ratio="$node_ratio" -v other="$(worst other)" -v steal="$(worst steal)" \
  -v LIMIT=15 'BEGIN {
  verdict(ratio >= 0.9, sprintf("throughput %.2f x publishing straight over %d channels, median of %d rounds (that round: %.0f vs %.0f req/s; target >= 0.90 x)", ratio, channels, rounds, ing, base))
  printf "       (%.2f x publishing straight over one channel: %.0f req/s)\n", ratio_one, base_one
  verdict(cpu_ratio > 0 && cpu_ratio <= 0.25, sprintf("CPU per accepted webhook %.2f x RabbitMQ CPU per message in the same phase, median round (target <= 0.25 x)", cpu_ratio))
  verdict(node_ratio > 0 && node_ratio <= 0.25, sprintf("CPU per accepted webhook %.2f x the hand-written Node receiver'"'"'s (livekit-server-sdk + amqplib), median round (target <= 0.25 x)", node_ratio))
  verdict(storm_failed == 0 && storm_s <= 1.0, sprintf("join storm: %d distinct joins at %d connections accepted in %.2f s, %d failed (target <= 1 s)", storm, storm_c, storm_s, storm_failed))
  verdict(p99 <= 25 && achieved >= 0.98 * rate, sprintf("p99 at %d req/s: %.2f ms, achieved %.0f req/s (target <= 25 ms)", rate, p99, achieved))
  printf "       (direct publish at %d req/s: p99 %.2f ms)\n", rate, base_p99
  verdict(peak <= 65536, sprintf("peak RSS %.1f MiB (target <= 64 MiB)", peak / 1024))
  if (other > LIMIT) printf "WARNING other processes used up to %.0f%% of a core during a phase: the figures are not reliable\n", other
  if (steal > LIMIT) printf "WARNING the hypervisor took up to %.0f%% of a core during a phase (steal): the figures are not reliable\n", steal
  exit missed ? 3 : 0
}
function verdict(ok, text) { printf "%s %s\n", ok ? "MET   " : "MISSED", text; if (!ok) missed = 1 }'
