#!/usr/bin/env python3
"""Tables of scripts/device-bench.sh's all-reduce runs: swift-ccl against Open MPI (shared memory)
and torch's Gloo (TCP) for every rank count measured, medians of the interleaved rounds' p50s, and
the ratio (peer's time / ours: above 1 is ours faster); shared-memory cells also name the
all-reduce the cost model chose (oneshot/twoshot, both when rounds differed)."""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1]
rows = {}
algorithms = {}  # (np, size) -> the shared-memory all-reduce each swift-ccl round ran
for path in glob.glob(os.path.join(out, "*_rep*.jsonl")):
    lib, np, transport = os.path.basename(path).split("_")[:3]
    for line in open(path):
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if lib == "ccl":
            size, p50, wrong = r["size"], r["time_us"], r["wrong"]
            if "shm_algorithm" in r:
                algorithms.setdefault((int(np[2:]), size), set()).add(r["shm_algorithm"])
        elif lib == "openmpi":
            if r.get("type") != "result" or r.get("op") != "allreduce":
                continue
            size, p50, wrong = r["bytes_per_rank"], r["p50_us"], r.get("bad_elements", 0)
        else:
            size, p50, wrong = r["bytes_per_rank"], r["p50_us"], 0
        rows.setdefault((lib, int(np[2:]), transport, size), []).append((p50, wrong))


def med(key):
    values = rows.get(key)
    return statistics.median(v[0] for v in values) if values else None


def human(n):
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB" if n >= 1 << 10 else f"{n} B"


wrong = sum(v[1] for values in rows.values() for v in values)
for transport, peer, label in (("shm", "openmpi", "Open MPI"), ("tcp", "gloo", "Gloo")):
    counts = sorted({k[1] for k in rows if k[2] == transport and k[0] == "ccl"})
    if not counts:
        continue
    print(f"all-reduce float32 sum over {transport}, p50 µs: swift-ccl / {label} (ratio = {label}'s time / ours)")
    print()
    print("| size | " + " | ".join(f"{n} ranks" for n in counts) + " |")
    print("|---|" + "---|" * len(counts))
    for size in sorted({k[3] for k in rows if k[2] == transport}):
        cells = []
        for n in counts:
            ours, theirs = med(("ccl", n, transport, size)), med((peer, n, transport, size))
            if ours is None:
                cells.append("-")
            elif theirs is None:
                cells.append(f"{ours:.3g} / -")
            else:
                cells.append(f"{ours:.3g} / {theirs:.3g} ({theirs / ours:.2f}×)")
            if ours is not None and transport == "shm" and (n, size) in algorithms:
                cells[-1] += " " + "/".join(sorted(algorithms[(n, size)]))
        print(f"| {human(size)} | " + " | ".join(cells) + " |")
    print()
variants = sorted({k[2] for k in rows if k[0] == "ccl" and k[2].startswith("tcp-")})
if variants:
    print("swift-ccl over TCP, the defaults against their alternatives, p50 µs: default / variant (variant's time / default's)")
    print("(tcp-nostream: the ring step by step; tcp-norecvthread: streamed, received on the caller's thread;"
          " tcp-ring: the ring instead of halving-doubling, streamed; tcp-ringnostream: neither)")
    print()
    print("| ranks | variant | " + " | ".join(human(s) for s in sorted({k[3] for k in rows if k[2] == "tcp"})) + " |")
    sizes = sorted({k[3] for k in rows if k[2] == "tcp"})
    print("|---|---|" + "---|" * len(sizes))
    for n in sorted({k[1] for k in rows if k[2] in variants}):
        for variant in variants:
            cells = []
            for size in sizes:
                ours, other = med(("ccl", n, "tcp", size)), med(("ccl", n, variant, size))
                cells.append("-" if ours is None or other is None else f"{ours:.3g} / {other:.3g} ({other / ours:.2f}×)")
            if any(c != "-" for c in cells):
                print(f"| {n} | {variant} | " + " | ".join(cells) + " |")
    print()
print(f"elements checked wrong (swift-ccl and Open MPI): {wrong}")
