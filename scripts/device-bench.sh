#!/usr/bin/env bash
# Issue 14's figures on the 16-core device machine, every peer in the same run, interleaved
# (each configuration once per round, ROUNDS rounds, medians): shared-memory all-reduce against
# Open MPI (mpi_bench.c) for 2, 4, 8 and 16 ranks over 8 B–64 MiB; TCP all-reduce against
# torch's Gloo for 2 and 8 ranks (and our TCP defaults against their alternatives: the ring not
# streamed, the ring instead of halving-doubling); the broadcast queue against vLLM 0.33.0's MessageQueue for 1,
# 3, 7 and 15 readers, with memcpy bandwidth (physical_limit.c) and the futex wake-up floor
# (futex_wake_floor.c; ccl bench queue reports its own floor too). About 4 minutes.
#
# Here (2-core machine, network for pip):  bash scripts/device-bench.sh prepare
#   (the static ccl via scripts/gpu-check.sh prepare, the anchor sources, vLLM's
#   shm_broadcast.py and a pyzmq wheel for the device's Python 3.12, all in the ignored device/)
# There (through the device tool, carry device/):  bash scripts/device-bench.sh run
#   (raw JSON under $OUT/device-bench, the tables in $OUT/device-bench/summary.md)
# Anywhere with Open MPI, mpicc and gcc: RUN_HERE=1 ROUNDS=1 NPS="2" TCP_NPS="2" READERS="1"
#   bash scripts/device-bench.sh run   checks the plumbing (torch and vLLM parts skip, saying so).
set -euo pipefail
cd "$(dirname "$0")/.."
ANCHORS=${ANCHORS:-../shared/anchors}
case "${1:-}" in
prepare)
  bash scripts/gpu-check.sh prepare
  cp "$ANCHORS/mq/bench_vllm_mq.py" "$ANCHORS/mq/vllm_mq_harness.py" "$ANCHORS/mq/physical_limit.c" \
    Benchmarks/futex_wake_floor.c Benchmarks/queue_compare.py device/
  python3 device/vllm_mq_harness.py fetch 0.33.0 --cache device/vllm-cache >/dev/null
  mkdir -p device/wheels
  python3 -m pip download --quiet --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
    --platform manylinux2014_x86_64 --no-deps -d device/wheels pyzmq
  du -sh device
  ;;
run)
  OUT=${OUT:-/tmp/device-bench}/device-bench
  ROUNDS=${ROUNDS:-2}
  NPS=${NPS:-2 4 8 16}
  TCP_NPS=${TCP_NPS:-2 8}
  READERS=${READERS:-1 3 7 15}
  SIZES=${SIZES:-8,1K,64K,1M,16M,64M}
  TARGET_MS=${TARGET_MS:-100}
  mkdir -p "$OUT/collectives" "$OUT/queue"
  work=$(mktemp -d)
  if [[ -n "${RUN_HERE:-}" ]]; then
    swift build -c release --product ccl >/dev/null && cp .build/release/ccl "$work/ccl"
    MPICC=${MPICC:-mpicc.openmpi}
    MPIRUN=${MPIRUN:-mpirun.openmpi}
    cp "$ANCHORS/collectives/mpi_bench.c" "$ANCHORS/device/torch_anchor.py" "$ANCHORS/mq/physical_limit.c" "$work/"
  else
    xz -dc device/ccl.xz >"$work/ccl" && chmod +x "$work/ccl"
    MPICC=${MPICC:-mpicc}
    MPIRUN=${MPIRUN:-mpirun}
    cp device/mpi_bench.c device/torch_anchor.py device/physical_limit.c "$work/"
    python3 -m pip install --quiet --no-index --target "$work/py" device/wheels/*.whl
    export PYTHONPATH="$work/py${PYTHONPATH:+:$PYTHONPATH}" ANCHOR_VLLM_CACHE="$PWD/device/vllm-cache"
  fi
  "$MPICC" -O2 -o "$work/mpi_bench" "$work/mpi_bench.c"
  gcc -O2 -std=c11 -o "$work/physical_limit" "$work/physical_limit.c" -lpthread
  gcc -O2 -o "$work/futex_wake_floor" Benchmarks/futex_wake_floor.c
  # One rank per core, as swift-ccl's bench pins them; more ranks than cores (here) may share.
  ompi=("$MPIRUN" --allow-run-as-root --oversubscribe --bind-to core:overload-allowed --mca btl_tcp_if_include lo)
  have_torch=$(python3 -c 'import torch.distributed' 2>/dev/null && echo 1 || echo 0)
  have_vllm=$(python3 -c 'import zmq, sys; sys.path.insert(0, "device"); import vllm_mq_harness' 2>/dev/null && echo 1 || echo 0)
  [[ $have_torch == 1 ]] || echo "skipped: torch's Gloo (no torch here)" | tee "$OUT/skipped.txt"
  [[ $have_vllm == 1 ]] || echo "skipped: vLLM's queue (no pyzmq or harness here)" | tee -a "$OUT/skipped.txt"
  nproc >"$OUT/cpus.txt"
  for ((round = 1; round <= ROUNDS; round++)); do
    echo "round $round/$ROUNDS" >&2
    for np in $NPS; do
      "$work/ccl" bench allreduce --nproc "$np" --transport shm --sizes "$SIZES" --target-ms "$TARGET_MS" --json \
        >"$OUT/collectives/ccl_np${np}_shm_rep$round.jsonl"
      "${ompi[@]}" -np "$np" "$work/mpi_bench" --ops allreduce --sizes "$SIZES" --target-ms "$TARGET_MS" --label "np${np}_shm" \
        >"$OUT/collectives/openmpi_np${np}_shm_rep$round.jsonl" 2>"$OUT/collectives/openmpi_np${np}.stderr" \
        || echo "Open MPI's mpi_bench failed with $np ranks (see openmpi_np${np}.stderr)" | tee -a "$OUT/skipped.txt"
    done
    for np in $TCP_NPS; do
      "$work/ccl" bench allreduce --nproc "$np" --transport tcp --sizes "$SIZES" --target-ms "$TARGET_MS" --json \
        >"$OUT/collectives/ccl_np${np}_tcp_rep$round.jsonl"
      # The choices the defaults make, against their alternatives: the ring streamed or step by
      # step (CCL_TCP_STREAM), with a receive thread or not (CCL_TCP_RECEIVE_THREAD), and on
      # power-of-two groups of 4+ the ring against halving-doubling.
      if ((np >= 4 && (np & (np - 1)) == 0)); then
        variants=("tcp-ring CCL_ALGO=ring" "tcp-ringnostream CCL_ALGO=ring CCL_TCP_STREAM=0")
      else
        variants=("tcp-nostream CCL_TCP_STREAM=0" "tcp-norecvthread CCL_TCP_RECEIVE_THREAD=0")
      fi
      for variant in "${variants[@]}"; do
        read -r name settings <<<"$variant"
        env $settings "$work/ccl" bench allreduce --nproc "$np" --transport tcp --sizes "$SIZES" --target-ms "$TARGET_MS" --json \
          >"$OUT/collectives/ccl_np${np}_${name}_rep$round.jsonl"
      done
      if [[ $have_torch == 1 ]]; then
        timeout 120 python3 "$work/torch_anchor.py" gloo "$np" >"$OUT/collectives/gloo_np${np}_tcp_rep$round.jsonl" 2>/dev/null || true
      fi
    done
    for readers in $READERS; do
      "$work/ccl" bench queue --readers "$readers" --idle-seconds 0.5 --scale 0.3 --json >"$OUT/queue/ccl-R$readers-rep$round.jsonl"
      if [[ $have_vllm == 1 ]]; then
        timeout 120 python3 device/bench_vllm_mq.py run --version 0.33.0 --readers "$readers" --quick --rep "$round" \
          --out "$OUT/queue/vllm-R$readers-rep$round.json" >/dev/null 2>&1 || true
      fi
    done
    "$work/physical_limit" >"$OUT/queue/limit-rep$round.json"
    "$work/futex_wake_floor" 0.5 5 >"$OUT/queue/futex-rep$round.json"
  done
  {
    echo "# device-bench, $(nproc) CPUs, $ROUNDS interleaved rounds, $(date -u +%FT%TZ)"
    echo
    python3 Benchmarks/device_summary.py "$OUT/collectives"
    echo
    python3 Benchmarks/queue_compare.py "$OUT/queue"
  } | tee "$OUT/summary.md"
  ;;
*)
  echo "usage: bash scripts/device-bench.sh prepare|run" >&2
  exit 2
  ;;
esac
