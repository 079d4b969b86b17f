#!/usr/bin/env bash
# `ccl bench` side by side with Open MPI 4.1 and Gloo: all-reduce (2 ranks shm and tcp, 4 ranks
# shm), then all-gather, reduce-scatter and broadcast (2 ranks shm and tcp); float32, sum,
# interleaved in one run (every configuration once per round, REPEATS rounds), medians of the
# per-round p50s. The peers run the anchors' own benchmark programs (../shared/anchors/collectives),
# built by its run.sh (which also installs openmpi-bin, libopenmpi-dev and libgloo-dev).
#
#   bash Benchmarks/collectives-vs-anchors.sh [REPEATS]      (default 3; results in Benchmarks/results/)
#   OTHER_OPS="" bash Benchmarks/collectives-vs-anchors.sh   (all-reduce only)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPEATS=${1:-3}
SIZES=${SIZES:-8,1K,64K,1M,16M,64M}
SMALL=${SMALL:-8,1K}
TARGET_MS=${TARGET_MS:-400}
OTHER_OPS=${OTHER_OPS-allgather reducescatter broadcast}
OTHER_SIZES=${OTHER_SIZES:-8,1K,64K,1M,16M}
ANCHORS=${ANCHORS:-/tmp/ccl-anchors}
OUT=${OUT:-$HERE/results/collectives-$(date +%Y-%m-%d)}
mkdir -p "$OUT"

if [[ ! -x "$ANCHORS/build/mpi_bench_openmpi" || ! -x "$ANCHORS/build/gloo_bench" ]]; then
  rm -rf "$ANCHORS" && cp -r "$ROOT/../shared/anchors/collectives" "$ANCHORS"
  (cd "$ANCHORS" && rm -rf raw quick && LIBS="openmpi gloo" HAVE_MPICH=0 QUICK=1 NPS=2 ./run.sh >"$OUT/anchors-setup.log" 2>&1)
fi
(cd "$ROOT" && swift build -c release --product ccl >/dev/null)
CCL="$ROOT/.build/release/ccl"
OMPI=(mpirun.openmpi --allow-run-as-root --oversubscribe --mca oob_tcp_if_include lo --mca btl_tcp_if_include lo)

gloo() {  # ranks sizes outfile [op]
  local store; store=$(mktemp -d /tmp/gloo_store.XXXXXX)
  local pids=()
  for ((r = 0; r < $1; r++)); do
    "$ANCHORS/build/gloo_bench" --rank "$r" --nranks "$1" --store "$store" --host 127.0.0.1 --ops "${4:-allreduce}" \
      --sizes "$2" --target-ms "$TARGET_MS" --label "np$1_tcp" >"$3.r$r" 2>/dev/null &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  cp "$3.r0" "$3"; rm -rf "$store" "$3".r*
}

for ((rep = 1; rep <= REPEATS; rep++)); do
  echo "round $rep/$REPEATS" >&2
  "$CCL" bench allreduce --nproc 2 --transport shm --sizes "$SIZES" --target-ms "$TARGET_MS" --json >"$OUT/ccl_np2_shm_rep$rep.jsonl"
  "${OMPI[@]}" -np 2 "$ANCHORS/build/mpi_bench_openmpi" --ops allreduce --sizes "$SIZES" --target-ms "$TARGET_MS" --label np2_shm >"$OUT/openmpi_np2_shm_rep$rep.jsonl" 2>/dev/null
  "$CCL" bench allreduce --nproc 4 --transport shm --sizes "$SMALL" --target-ms "$TARGET_MS" --json >"$OUT/ccl_np4_shm_rep$rep.jsonl"
  "${OMPI[@]}" -np 4 "$ANCHORS/build/mpi_bench_openmpi" --ops allreduce --sizes "$SMALL" --target-ms "$TARGET_MS" --label np4_shm >"$OUT/openmpi_np4_shm_rep$rep.jsonl" 2>/dev/null
  "$CCL" bench allreduce --nproc 2 --transport tcp --sizes "$SIZES" --target-ms "$TARGET_MS" --json >"$OUT/ccl_np2_tcp_rep$rep.jsonl"
  "${OMPI[@]}" --mca pml ob1 --mca btl tcp,self -np 2 "$ANCHORS/build/mpi_bench_openmpi" --ops allreduce --sizes "$SIZES" --target-ms "$TARGET_MS" --label np2_tcp >"$OUT/openmpi_np2_tcp_rep$rep.jsonl" 2>/dev/null
  gloo 2 "$SIZES" "$OUT/gloo_np2_tcp_rep$rep.jsonl"
  for op in $OTHER_OPS; do
    mpi_op=$op; [[ $op == reducescatter ]] && mpi_op=reduce_scatter
    for transport in shm tcp; do
      "$CCL" bench "$op" --nproc 2 --transport $transport --sizes "$OTHER_SIZES" --target-ms "$TARGET_MS" --json >"$OUT/ccl_np2_${transport}_${op}_rep$rep.jsonl"
    done
    "${OMPI[@]}" -np 2 "$ANCHORS/build/mpi_bench_openmpi" --ops $mpi_op --sizes "$OTHER_SIZES" --target-ms "$TARGET_MS" --label np2_shm >"$OUT/openmpi_np2_shm_${op}_rep$rep.jsonl" 2>/dev/null
    "${OMPI[@]}" --mca pml ob1 --mca btl tcp,self -np 2 "$ANCHORS/build/mpi_bench_openmpi" --ops $mpi_op --sizes "$OTHER_SIZES" --target-ms "$TARGET_MS" --label np2_tcp >"$OUT/openmpi_np2_tcp_${op}_rep$rep.jsonl" 2>/dev/null
    gloo 2 "$OTHER_SIZES" "$OUT/gloo_np2_tcp_${op}_rep$rep.jsonl" $mpi_op
  done
done

python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
rows = {}
others = {}
for path in glob.glob(os.path.join(out, "*_rep*.jsonl")):
    parts = os.path.basename(path)[:-len(".jsonl")].split("_")
    lib, np, transport = parts[:3]
    op = parts[3] if len(parts) == 5 else "allreduce"
    for line in open(path):
        if not line.startswith("{"): continue
        r = json.loads(line)
        if lib == "ccl":
            size, p50, busbw, wrong = r["size"], r["time_us"], r["busbw_gbps"], r["wrong"]
        else:
            if r.get("type") != "result" or r.get("op", "").replace("_", "") != op: continue
            size, p50, busbw, wrong = r["bytes_per_rank"], r["p50_us"], r["busbw_p50_GBps"], r.get("bad_elements", 0)
        target = rows if op == "allreduce" else others.setdefault(op, {})
        target.setdefault((lib, np, transport, size), []).append((p50, busbw, wrong))
def med(key, i):
    values = rows.get(key)
    return statistics.median(v[i] for v in values) if values else None
def human(n):
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB" if n >= 1 << 10 else f"{n} B"
def cell(key):
    p, b = med(key, 0), med(key, 1)
    return "-" if p is None else f"{p:.3g} / {b:.3g}"
sizes = sorted({k[3] for k in rows})
print(f"all-reduce float32 sum, p50 µs / busbw GB/s, medians of {len(glob.glob(os.path.join(out, 'ccl_np2_shm_rep*.jsonl')))} interleaved rounds")
print()
print("| size | ccl 2r shm | Open MPI 2r shm | ratio (time) | ccl 4r shm | Open MPI 4r shm | ccl 2r tcp | Open MPI 2r tcp | Gloo 2r tcp | ccl vs best peer (tcp) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for s in sizes:
    a, b = med(("ccl", "np2", "shm", s), 0), med(("openmpi", "np2", "shm", s), 0)
    ratio = f"{b / a:.2f}× faster" if a and b else "-"
    t = med(("ccl", "np2", "tcp", s), 0)
    peers = [v for v in (med(("openmpi", "np2", "tcp", s), 0), med(("gloo", "np2", "tcp", s), 0)) if v]
    tcp_ratio = f"{min(peers) / t:.2f}× faster" if t and peers else "-"
    print(f"| {human(s)} | {cell(('ccl','np2','shm',s))} | {cell(('openmpi','np2','shm',s))} | {ratio} | {cell(('ccl','np4','shm',s))} | "
          f"{cell(('openmpi','np4','shm',s))} | {cell(('ccl','np2','tcp',s))} | {cell(('openmpi','np2','tcp',s))} | {cell(('gloo','np2','tcp',s))} | {tcp_ratio} |")
for op, table in sorted(others.items()):
    def omed(key, i):
        values = table.get(key)
        return statistics.median(v[i] for v in values) if values else None
    def ocell(key):
        p, b = omed(key, 0), omed(key, 1)
        return "-" if p is None else f"{p:.3g} / {b:.3g}"
    print()
    print(f"{op}, 2 ranks, p50 µs / busbw GB/s")
    print()
    print("| size | ccl shm | Open MPI shm | ccl faster by | ccl tcp | Open MPI tcp | Gloo tcp | ccl faster than best peer (tcp) |")
    print("|---|---|---|---|---|---|---|---|")
    for s in sorted({k[3] for k in table}):
        a, b = omed(("ccl", "np2", "shm", s), 0), omed(("openmpi", "np2", "shm", s), 0)
        t = omed(("ccl", "np2", "tcp", s), 0)
        peers = [v for v in (omed(("openmpi", "np2", "tcp", s), 0), omed(("gloo", "np2", "tcp", s), 0)) if v]
        print(f"| {human(s)} | {ocell(('ccl','np2','shm',s))} | {ocell(('openmpi','np2','shm',s))} | {f'{b / a:.2f}×' if a and b else '-'} | "
              f"{ocell(('ccl','np2','tcp',s))} | {ocell(('openmpi','np2','tcp',s))} | {ocell(('gloo','np2','tcp',s))} | "
              f"{f'{min(peers) / t:.2f}×' if t and peers else '-'} |")
wrong = sum(v[2] for values in rows.values() for v in values) + sum(v[2] for table in others.values() for values in table.values() for v in values)
print()
print(f"wrong elements across all runs: {wrong}")
PY
