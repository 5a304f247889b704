#!/usr/bin/env bash
# The whole pipeline's CPU per event against a baseline, side by side in one run (issue 35,
# docs/benchmarks.md "The pipeline against its baseline").
#
# Builds BENCH_BASELINE (a git revision; default a64cec2, main when the work on the pipeline's
# cost began) in a worktree under the cache, with a target folder of its own; then runs
# scripts/bench-processor.sh once with that build's processor and ingestor (BENCH_BIN) and once
# with this checkout's, BENCH_COMPARE_ROUNDS times, alternating (baseline first), each on fresh
# vhost, database and bucket. The load generator is this checkout's in both. Every knob of
# bench-processor.sh passes through; BENCH_PROBE is `on` here unless set (the probe on, as the
# baseline was measured).
#
# Prints, per phase, the CPU per event of each process and of the pipeline (every process but
# the load generator) on both sides, and current / baseline: the mean over the rounds. Then the
# webhook → row p99 of the e2e phases on both sides. Full outputs stay in BENCH_COMPARE_OUT
# (default a temporary folder, printed).
#
# Exit status: 0 when every run finished, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

BASELINE="${BENCH_BASELINE:-a64cec2}"
ROUNDS="${BENCH_COMPARE_ROUNDS:-1}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_COMPARE_ROUNDS must be a positive number, not $ROUNDS" >&2; exit 2; }
export BENCH_PROBE="${BENCH_PROBE:-on}"

# shellcheck source=bench-common.sh
. scripts/bench-common.sh
cache="${XDG_CACHE_HOME:-$HOME/.cache}/roomtape"
rev="$(git rev-parse --verify --quiet "$BASELINE^{commit}")" ||
  { log "BENCH_BASELINE: $BASELINE is not a commit of this repository"; exit 2; }
tree="$cache/baseline/$rev"
if [ ! -f "$tree/Cargo.toml" ]; then
  log "checking out the baseline $rev into $tree"
  git worktree prune
  rm -rf "$tree"
  git worktree add --detach "$tree" "$rev" >&2
fi
log "building the baseline's release processor and ingestor"
(cd "$tree" && CARGO_TARGET_DIR="$cache/baseline-target" cargo build --release --locked \
  --bin roomtape-processor --bin roomtape-ingestor >&2)
baseline_bin="$cache/baseline-target/release"
log "building this checkout's"
cargo build --release --locked --bin roomtape-ingestor --bin roomtape-processor --bin roomtape-bench >&2

out="${BENCH_COMPARE_OUT:-$(mktemp -d)}"
mkdir -p "$out"
log "outputs in $out"
echo "baseline: $rev ($(git log -1 --format=%s "$rev" | cut -c1-70)); current: $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' with uncommitted changes')"
for round in $(seq "$ROUNDS"); do
  for side in baseline current; do
    log "round $round: $side"
    case "$side" in
      baseline) BENCH_BIN="$baseline_bin" scripts/bench-processor.sh >"$out/$side-$round.out" ;;
      current) BENCH_BIN="$CARGO_TARGET_DIR/release" scripts/bench-processor.sh >"$out/$side-$round.out" ;;
    esac || { log "the $side run of round $round failed: see $out/$side-$round.out"; exit 1; }
  done
done

# CPUPER lines → the mean per (side, phase, process) over the rounds, then one table per phase.
echo
echo "CPU per event, µs (mean of $ROUNDS round(s)); ratio = current / baseline"
awk '
  FNR == 1 { side = FILENAME; sub(/.*\//, "", side); sub(/-[0-9]+\.out$/, "", side) }
  $1 == "CPUPER" {
    split($2, l, "="); phase = l[2]; sub(/-r[0-9]+$/, "", phase)
    if (!(phase in seen)) { seen[phase] = 1; phases[++np] = phase }
    for (i = 3; i <= NF; i++) { split($i, kv, "="); key = side SUBSEP phase SUBSEP kv[1]
      sum[key] += kv[2]; n[key]++
      if (!((phase, kv[1]) in has)) { has[phase, kv[1]] = 1; procs[phase, ++nproc[phase]] = kv[1] } } }
  function mean(side, phase, proc,  key) { key = side SUBSEP phase SUBSEP proc; return n[key] ? sum[key] / n[key] : 0 }
  END {
    for (p = 1; p <= np; p++) { phase = phases[p]; printf "\n%s\n  %-10s %10s %10s %7s\n", phase, "", "baseline", "current", "ratio"
      for (i = 1; i <= nproc[phase]; i++) { proc = procs[phase, i]; b = mean("baseline", phase, proc); c = mean("current", phase, proc)
        printf "  %-10s %10.1f %10.1f %7s\n", proc, b, c, (b > 0 ? sprintf("%.2f", c / b) : "-") } } }' \
  "$out"/baseline-*.out "$out"/current-*.out

echo
echo "webhook → row, ms (each round)"
for f in "$out"/baseline-*.out "$out"/current-*.out; do
  awk -v run="$(basename "$f" .out)" '$1 == "RESULT" && $3 == "mode=e2e" { split($2, l, "=")
      for (i = 4; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "  %-12s %-18s p50 %8.1f  p99 %8.1f  max %8.1f\n", run, l[2], v["p50_ms"], v["p99_ms"], v["max_ms"] }' "$f"
done
