#!/usr/bin/env bash
# The MPI backend beside the C anchor on the 16-core device machine (Open MPI 4.1.6 there, no
# Swift): 2, 4, 8 and 16 ranks, which this 2-core machine cannot measure (4 MPI ranks busy-poll
# two cores). Uses what `bash scripts/gpu-check.sh prepare` put in device/ (the static ccl and
# mpi_bench.c).
#
# There (through the device tool, carrying device/):  bash scripts/device-mpi.sh
#   (tables and raw JSON under $OUT/mpi-vs-c; about 4 minutes with the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device-mpi}
work=$(mktemp -d)
xz -dc device/ccl.xz >"$work/ccl" && chmod +x "$work/ccl"
CCL="$work/ccl" ANCHOR=device/mpi_bench.c MPICC=mpicc MPIRUN=mpirun LIBS=openmpi NPS="${NPS:-2 4 8 16}" \
  SIZES="${SIZES:-8,64K,1M,16M}" TARGET_MS="${TARGET_MS:-200}" OUT="$OUT/mpi-vs-c" \
  bash Benchmarks/mpi-vs-c.sh "${REPEATS:-3}"
