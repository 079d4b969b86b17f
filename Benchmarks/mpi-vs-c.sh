#!/usr/bin/env bash
# The MPI backend's all-reduce (`mpirun … ccl bench allreduce --backend mpi`) beside the C anchor
# `../shared/anchors/collectives/mpi_bench.c` built against the same library and started by the
# same mpirun with the same options: Open MPI 4.1 and MPICH 4.0 (Debian), 2 and 4 ranks, float32
# sum, interleaved (every configuration once per round, REPEATS rounds); medians and minimums of
# the per-round p50s, the difference in µs and the ratio. Needs mpicc.openmpi and mpicc.mpich (libopenmpi-dev,
# libmpich-dev) to build the anchor.
#
#   bash Benchmarks/mpi-vs-c.sh [REPEATS]      (default 5; results in Benchmarks/results/)
#   CCL=/path/ccl ANCHOR=mpi_bench.c MPICC=mpicc MPIRUN=mpirun LIBS=openmpi NPS="2 4 8" …
#     (a machine without Swift or Debian's names: scripts/device-mpi.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPEATS=${1:-5}
SIZES=${SIZES:-8,1K,64K,1M,16M}
TARGET_MS=${TARGET_MS:-400}
NPS=${NPS:-2 4}
LIBS=${LIBS:-openmpi mpich}
OUT=${OUT:-$HERE/results/mpi-vs-c-$(date +%Y-%m-%d)}
mkdir -p "$OUT/raw"
ANCHOR=${ANCHOR:-$ROOT/../shared/anchors/collectives/mpi_bench.c}
for lib in $LIBS; do "${MPICC:-mpicc.$lib}" -O2 -Wall -o "$OUT/mpi_bench_$lib" "$ANCHOR" -lm; done
if [[ -z "${CCL:-}" ]]; then
  (cd "$ROOT" && swift build -c release --product ccl >/dev/null)
  CCL="$ROOT/.build/release/ccl"
fi
launcher() {  # lib np
  case $1 in
    openmpi) echo "${MPIRUN:-mpirun.openmpi} --allow-run-as-root --oversubscribe --mca oob_tcp_if_include lo --mca btl_tcp_if_include lo -np $2" ;;
    mpich) echo "env UCX_NET_DEVICES=lo mpirun.mpich -iface lo -np $2" ;;
  esac
}
for ((round = 1; round <= REPEATS; round++)); do
  for lib in $LIBS; do
    for np in $NPS; do
      base="$OUT/raw/${lib}_np${np}_r$round"
      # shellcheck disable=SC2046
      $(launcher "$lib" "$np") "$OUT/mpi_bench_$lib" --ops allreduce --sizes "$SIZES" --target-ms "$TARGET_MS" \
        --label "np$np" >"$base.c.jsonl" 2>"$base.c.err"
      # shellcheck disable=SC2046
      $(launcher "$lib" "$np") "$CCL" bench allreduce --backend mpi --no-check --sizes "$SIZES" --target-ms "$TARGET_MS" \
        --json >"$base.ccl.jsonl" 2>"$base.ccl.err"
      echo "round $round $lib np$np done" >&2
    done
  done
done
python3 - "$OUT" <<'PY' | tee "$OUT/table.md"
import json, statistics, sys, glob, os, collections
out = sys.argv[1]
values = collections.defaultdict(list)
for path in sorted(glob.glob(os.path.join(out, "raw", "*.jsonl"))):
    name = os.path.basename(path)
    lib, np, _ = name.split("_", 2)
    impl = "c" if name.endswith(".c.jsonl") else "ccl"
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        if impl == "c" and row.get("type") == "result":
            values[(lib, np, row["bytes_per_rank"], impl)].append(row["p50_us"])
        elif impl == "ccl" and "time_us" in row:
            values[(lib, np, row["size"], impl)].append(row["time_us"])
# This 2-vCPU machine switches between a fast and a ~4x slower state for seconds at a time (both
# programs alike), so besides the median of the rounds' p50s the table gives the best round's.
print("| library | ranks | size | C p50 median (µs) | ours median (µs) | C best round (µs) | ours best round (µs) | best: difference (µs) | best: ratio C/ours | rounds |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (lib, np, size, impl) in sorted(k for k in values if k[3] == "c"):
    cs = values[(lib, np, size, "c")]
    ours = values.get((lib, np, size, "ccl"))
    if not ours:
        continue
    c, o = statistics.median(cs), statistics.median(ours)
    cb, ob = min(cs), min(ours)
    print(f"| {lib} | {np[2:]} | {size} | {c:.2f} | {o:.2f} | {cb:.2f} | {ob:.2f} | {ob - cb:+.2f} | {cb / ob:.3f} | {len(ours)} |")
PY
