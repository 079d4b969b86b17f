#!/usr/bin/env bash
# Runs `ccl bench queue` and vLLM's MessageQueue (../shared/anchors/mq) side by side, interleaved,
# REPS times each, plus the memcpy floor, then prints the comparison table for BENCHMARKS.md.
#
#   bash Benchmarks/queue-vs-vllm.sh [REPS]        (default 3; about 2 minutes per rep)
#
# Needs the anchors checkout at ../shared/anchors (or ANCHORS=/path) and its setup
# (`bash $ANCHORS/mq/setup.sh 0.33.0`, which this script runs). Raw results go to
# ${OUT:-/tmp/ccl-queue-bench}.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS="${1:-3}"
ANCHORS="${ANCHORS:-$(cd .. && pwd)/shared/anchors}"
OUT="${OUT:-/tmp/ccl-queue-bench}"
mkdir -p "$OUT"
bash "$ANCHORS/mq/setup.sh" 0.33.0 >/dev/null
swift build -c release --product ccl >/dev/null
gcc -O2 -std=c11 -o "$OUT/physical_limit" "$ANCHORS/mq/physical_limit.c" -lpthread
gcc -O2 -o "$OUT/futex_wake_floor" Benchmarks/futex_wake_floor.c
for rep in $(seq 1 "$REPS"); do
  for readers in 1 3; do
    echo "rep $rep, $readers reader(s): vLLM 0.33.0" >&2
    flock /tmp/cpu.lock python3 "$ANCHORS/mq/bench_vllm_mq.py" run --version 0.33.0 --readers "$readers" \
      --rep "$rep" --out "$OUT/vllm-R$readers-rep$rep.json" >/dev/null
    echo "rep $rep, $readers reader(s): swift-ccl" >&2
    flock /tmp/cpu.lock .build/release/ccl bench queue --readers "$readers" --json >"$OUT/ccl-R$readers-rep$rep.jsonl"
  done
  flock /tmp/cpu.lock "$OUT/physical_limit" >"$OUT/limit-rep$rep.json"
  flock /tmp/cpu.lock "$OUT/futex_wake_floor" 1 5 >"$OUT/futex-rep$rep.json"
done
python3 Benchmarks/queue_compare.py "$OUT"
