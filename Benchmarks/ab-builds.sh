#!/usr/bin/env bash
# Interleaved A/B of two `ccl` builds on the no-regression points of the backends issue: 2 ranks
# float32 all-reduce on shared memory (8 B p50, 64 MiB busbw) and over TCP (8 B p50). Each round
# runs A then B (order alternating between rounds); medians of the per-round figures.
#
#   bash Benchmarks/ab-builds.sh A_BINARY B_BINARY [ROUNDS]   (default 5; JSON lines in $OUT)
#   POINTS=tcp runs only the TCP point (a longer run of the noisiest one); A_BINARY twice is
#   an A/A run, which shows how far apart two identical builds measure.
set -euo pipefail
A=$1 B=$2 ROUNDS=${3:-5} POINTS=${POINTS:-all}
OUT=${OUT:-$(mktemp -d /tmp/ccl-ab.XXXXXX)}
mkdir -p "$OUT"
run() {  # binary label round
  if [[ $POINTS != tcp ]]; then "$1" bench allreduce --nproc 2 --transport shm --sizes 8,64M --json >>"$OUT/$2.jsonl"; fi
  "$1" bench allreduce --nproc 2 --transport tcp --sizes 8 --json >>"$OUT/$2.jsonl"
}
for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then run "$A" A; run "$B" B; else run "$B" B; run "$A" A; fi
done
python3 - "$OUT" <<'PY'
import json, statistics, sys, os
out = sys.argv[1]
def load(label):
    rows = [json.loads(l) for l in open(os.path.join(out, label + ".jsonl")) if l.startswith("{")]
    pick = lambda transport, size, key: [r[key] for r in rows if r["transport"] == transport and r["size"] == size]
    assert all(r["wrong"] == 0 for r in rows), "wrong results"
    return {
        "shm 8 B p50 (us)": pick("shm", 8, "time_us"),
        "shm 64 MiB busbw (GB/s)": pick("shm", 64 << 20, "busbw_gbps"),
        "tcp 8 B p50 (us)": pick("tcp", 8, "time_us"),
    }
a, b = load("A"), load("B")
print(f"| point | A median | B median | B/A | A per round | B per round |")
print(f"|---|---|---|---|---|---|")
for key in a:
    if not a[key]: continue
    ma, mb = statistics.median(a[key]), statistics.median(b[key])
    print(f"| {key} | {ma:.3g} | {mb:.3g} | {mb / ma:.3f} | {', '.join(f'{v:.3g}' for v in a[key])} | {', '.join(f'{v:.3g}' for v in b[key])} |")
PY
echo "raw: $OUT"
