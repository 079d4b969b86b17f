#!/usr/bin/env bash
# Soak of rendezvous against one long-lived store (issue 15): JOBS jobs of 2 ranks (CCLTestWorker
# `restart` mode: group, all-gather check, a communicator, 5 verified all-reduces, a 10-message
# queue); every third job first starts a rank 1 and SIGKILLs it while it waits for rank 0, and
# every fifth kills rank 1 inside a collective and restarts it (the survivor makes the group
# again). Prints the store's key count and the server's resident memory every 10 jobs.
#
#   bash Benchmarks/restart-soak.sh [JOBS] [BUILD_DIR]     (default 100, .build/debug)
set -euo pipefail
JOBS=${1:-100} BIN=${2:-.build/debug}
export CCL_TOKEN=soak
LOG=$(mktemp -d /tmp/ccl-soak.XXXXXX)
"$BIN/ccl" store serve --port 0 >"$LOG/server.out" 2>"$LOG/server.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
while ! grep -q ':' "$LOG/server.out" 2>/dev/null; do sleep 0.05; done
PORT=$(head -1 "$LOG/server.out" | awk -F: '{print $NF}' | tr -d ' ')
rss() { awk '/VmRSS/{print $2 " KiB"}' /proc/$SERVER/status; }
keys() { "$BIN/ccl" store keys --addr 127.0.0.1:$PORT 2>&1 >/dev/null | tail -1; }
# `exec`: a worker started with & is then the process itself, so kill -9 reaches it.
worker() { exec "$BIN/CCLTestWorker" restart port=$PORT token=soak world=2 transport=${TRANSPORT:-shm} iterations=5 queue=10 timeout=20 "$@"; }
echo "start: $(keys), server $(rss)"
failures=0
for ((job = 1; job <= JOBS; job++)); do
  TRANSPORT=$([ $((job % 2)) = 0 ] && echo tcp || echo shm)
  if ((job % 3 == 0)); then
    (worker rank=1 >"$LOG/doomed") & doomed=$!
    sleep 0.3; kill -9 $doomed; wait $doomed 2>/dev/null || true
  fi
  if ((job % 5 == 0)); then
    (worker rank=0 rejoin=1 iterations=30 >"$LOG/r0") & r0=$!
    { (worker rank=1 die=3 iterations=30 >"$LOG/r1" 2>/dev/null) || true; } 2>/dev/null
    (worker rank=1 iterations=30 >"$LOG/r1b") || failures=$((failures + 1))
    wait $r0 || failures=$((failures + 1))
    grep -q '^LOST' "$LOG/r0" || { echo "job $job: survivor did not see the loss"; failures=$((failures + 1)); }
  else
    (worker rank=0 >"$LOG/r0") & r0=$!
    (worker rank=1 >"$LOG/r1") || failures=$((failures + 1))
    wait $r0 || failures=$((failures + 1))
  fi
  grep -q '^DONE' "$LOG/r0" || { echo "job $job failed:"; cat "$LOG/r0" "$LOG/r1"* ; }
  if ((job % 10 == 0)); then echo "after $job jobs: $(keys), server $(rss), failures $failures"; fi
done
echo "end: $(keys), server $(rss), failures $failures (logs: $LOG)"
