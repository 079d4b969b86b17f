#!/usr/bin/env bash
# Installs what swift-ccl's build and tests need on a fresh Debian machine with Swift 6.3.
# Idempotent: iproute2 for the network-namespace tests when it is missing, Open MPI and MPICH (see
# below) for the MPI backend's tests, and a real NCCL from
# PyPI (nvidia-nccl-cu12, ~350 MB) for the python3 on PATH, which the NCCL loader's tests open at
# run time (no GPU needed: loading, versions and unique ids work without one).
set -euo pipefail
if ! command -v swift >/dev/null; then
  echo "setup: Swift 6.3 is required (https://swift.org/install)" >&2
  exit 1
fi
if ! command -v ip >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
fi
# MPI, opened at run time by the MPI backend, whose tests run real jobs: Open MPI and MPICH from
# Debian (their libraries and launchers, mpirun.openmpi and mpirun.mpich), and MPICH 5 from PyPI
# (the wheel `mpich`, 13 MB) for the MPI-5 standard ABI (libmpi_abi.so.1), in its own prefix.
has_mpi() {
  ldconfig -p | grep -q 'libmpi\.so\.40 ' && ldconfig -p | grep -q 'libmpich\.so\.12 ' \
    && command -v mpirun.openmpi >/dev/null && command -v mpirun.mpich >/dev/null
}
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] && ! has_mpi; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends openmpi-bin mpich >/dev/null
fi
if ! has_mpi; then
  echo "setup: could not install Open MPI (openmpi-bin) and MPICH (mpich); the MPI tests will fail" >&2
fi
NCCL_WHEEL="nvidia-nccl-cu12==2.32.3"
# The library file itself: an uninstalled wheel can leave an empty, still importable nvidia/nccl.
has_nccl() {
  python3 -c 'import os, site, sys; sys.exit(0 if any(os.path.exists(os.path.join(d, "nvidia/nccl/lib/libnccl.so.2")) for d in site.getsitepackages() + [site.getusersitepackages()]) else 1)' 2>/dev/null
}
if command -v python3 >/dev/null && ! has_nccl; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null
    fi
  fi
  python3 -m pip install --quiet --no-deps --disable-pip-version-check "$NCCL_WHEEL" 2>&1 | grep -v "Running pip as the 'root' user" || true
fi
if ! command -v python3 >/dev/null || ! has_nccl; then
  echo "setup: could not install $NCCL_WHEEL for python3; the NCCL loader tests will fail" >&2
fi
# MPICH 5 for the standard ABI (after the NCCL step, which makes sure pip is there).
MPICH5_PREFIX="${CCL_TEST_MPICH5_PREFIX:-/opt/swift-ccl/mpich-5.0.2}"
if [ ! -e "$MPICH5_PREFIX/lib/libmpi_abi.so.1" ] && command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
  python3 -m pip install --quiet --no-deps --disable-pip-version-check --prefix "$MPICH5_PREFIX" "mpich==5.0.2" 2>&1 \
    | grep -v "Running pip as the 'root' user" || true
fi
if [ ! -e "$MPICH5_PREFIX/lib/libmpi_abi.so.1" ]; then
  echo "setup: could not install MPICH 5.0.2 from PyPI into $MPICH5_PREFIX; the standard-ABI MPI tests will fail" >&2
fi
# Slurm on this one machine (slurmctld and slurmd with munge, one node, its CPUs
# oversubscribed), so that `srun` jobs are tested for real: Slurm's PMI-2 variables
# (PMI_RANK/PMI_SIZE/PMI_FD), the MPI libraries initialised under srun, the store over MPI_Bcast.
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] && ! command -v slurmd >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1 || true
fi
if command -v slurmd >/dev/null && [ "$(id -u)" = 0 ] && ! timeout 20 srun -n 1 true >/dev/null 2>&1; then
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
  [ -e /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
  chown munge:munge /etc/munge/munge.key /run/munge 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || /usr/sbin/munged --force 2>/dev/null || true
  host=$(hostname)
  cat >/etc/slurm/slurm.conf <<CONF
ClusterName=ccl
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
ReturnToService=2
MpiDefault=pmi2
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
  pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld || true
  pgrep -x slurmd >/dev/null || /usr/sbin/slurmd || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do timeout 10 srun -n 1 true >/dev/null 2>&1 && break; sleep 1; done
fi
if ! timeout 20 srun -n 1 true >/dev/null 2>&1; then
  echo "setup: no working Slurm (slurm-wlm, munge, slurmctld, slurmd); the srun tests will say so and skip" >&2
fi
