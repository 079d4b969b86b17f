#!/usr/bin/env bash
# The GPU backend checked on the device machine (one H200, no Swift there), in one command.
#
# Here (2-core machine):   bash scripts/gpu-check.sh prepare
#   builds a static `ccl` (release, --static-swift-stdlib), strips and xz-compresses it into
#   device/ (git-ignored) with the anchors' nccl_floor.c and torch_anchor.py.
# There (through the device tool, carrying device/):
#   bash scripts/gpu-check.sh run          (JSON lines in $OUT/gpu-check.jsonl; under 5 minutes)
#   runs `ccl gpu-check` (every op × dtype at world size 1 verified, a CUDA graph of 10
#   all-reduces replayed 100 times, per-call cost raw and behind the flight recorder, device
#   calls marked completed from CUDA events (trace_device), creation time), `ccl bench <op> --device
#   cuda` at world size 1 (every element verified), `ccl demo --device cuda --tp 1 --pp 2`,
#   `ccl gpu-check --ranks 2`
#   (two ranks on one GPU: our error on both), nccl_floor.c (the C floor, same run) and torch's
#   ProcessGroupNCCL (torch_anchor.py nccl, same run); the world communicator split (`split` row).
#   With MULTI_NCCL=/path/libnccl.so.2 (NCCL ≥ 2.30.7, carried in parts as
#   ../shared/anchors/device/README.md tells): `ccl gpu-check --ranks 2|4 --shared-gpu` under
#   NCCL_MULTI_RANK_GPU_ENABLE=1 (2 and 4 ranks on the one GPU all-reduce, then split into pairs).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
  swift build -c release --static-swift-stdlib --product ccl
  mkdir -p device
  cp .build/release/ccl device/ccl
  strip device/ccl
  rm -f device/ccl.xz && xz -T2 -6 device/ccl
  cp ../shared/anchors/device/nccl_floor.c ../shared/anchors/device/torch_anchor.py device/
  cp ../shared/anchors/collectives/mpi_bench.c device/  # for scripts/device-mpi.sh
  ls -la device
  ;;
run)
  OUT=${OUT:-/tmp/gpu-check}
  mkdir -p "$OUT"
  log="$OUT/gpu-check.jsonl"
  : >"$log"
  work=$(mktemp -d)
  xz -dc device/ccl.xz >"$work/ccl" && chmod +x "$work/ccl"
  nvidia-smi --query-gpu=name,driver_version,pci.bus_id --format=csv,noheader >"$OUT/gpu.txt" 2>&1 || true
  timeout 180 "$work/ccl" gpu-check >>"$log" 2>"$OUT/gpu-check.stderr" || echo "{\"check\":\"gpu-check\",\"exit\":\"$?\"}" >>"$log"
  timeout 60 "$work/ccl" gpu-check --ranks 2 >>"$log" 2>>"$OUT/gpu-check.stderr" || echo "{\"check\":\"duplicate\",\"exit\":\"$?\"}" >>"$log"
  timeout 60 "$work/ccl" demo --device cuda --tp 1 --pp 2 --steps 3 >"$OUT/demo-cuda.txt" 2>&1 \
    && echo '{"check":"demo_cuda","ok":"true"}' >>"$log" || echo "{\"check\":\"demo_cuda\",\"exit\":\"$?\"}" >>"$log"
  for op in allreduce allgather reducescatter broadcast sendrecv; do
    timeout 60 "$work/ccl" bench "$op" --device cuda --nproc 1 --sizes 8,1M,64M --target-ms 50 --json \
      | sed 's/^{/{"check":"bench_cuda",/' >>"$log" 2>>"$OUT/gpu-check.stderr" || echo "{\"check\":\"bench_cuda\",\"op\":\"$op\",\"exit\":\"$?\"}" >>"$log"
  done
  if gcc -O2 -o "$work/nccl_floor" device/nccl_floor.c -ldl 2>>"$OUT/gpu-check.stderr"; then
    cudart=$(ldconfig -p | awk '/libcudart.so/ {print $1; exit}')
    timeout 60 "$work/nccl_floor" "${cudart:-libcudart.so.13}" libnccl.so.2 | sed 's/^{/{"check":"nccl_floor",/' >>"$log" || true
  fi
  if [[ -n "${MULTI_NCCL:-}" && -f "$MULTI_NCCL" ]]; then
    for n in 2 4; do
      CCL_NCCL_SO_PATH="$MULTI_NCCL" NCCL_MULTI_RANK_GPU_ENABLE=1 timeout 120 "$work/ccl" gpu-check --ranks "$n" --shared-gpu \
        >>"$log" 2>>"$OUT/gpu-check.stderr" || echo "{\"check\":\"multirank\",\"ranks\":\"$n\",\"exit\":\"$?\"}" >>"$log"
    done
  fi
  timeout 90 python3 device/torch_anchor.py nccl | sed 's/^{/{"check":"torch_nccl",/' >>"$log" 2>>"$OUT/gpu-check.stderr" || true
  cat "$log"
  ;;
*)
  echo "usage: bash scripts/gpu-check.sh prepare|run" >&2
  exit 2
  ;;
esac
