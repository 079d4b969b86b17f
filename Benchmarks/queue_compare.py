#!/usr/bin/env python3
"""Aggregates Benchmarks/queue-vs-vllm.sh output: medians over reps, ratios, a Markdown table."""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ccl-queue-bench"
med = statistics.median


def ccl_rows(readers):
    rows = {}
    for path in sorted(glob.glob(os.path.join(out, f"ccl-R{readers}-rep*.jsonl"))):
        for line in open(path):
            row = json.loads(line)
            rows.setdefault(row["size"], []).append(row)
    return rows


def vllm_rows(readers):
    lat, thr, idle = {}, {}, []
    for path in sorted(glob.glob(os.path.join(out, f"vllm-R{readers}-rep*.json"))):
        for r in json.load(open(path))["results"]:
            if r.get("variant") != "bytes":
                continue
            if r["kind"] == "lat":
                lat.setdefault(r["size"], []).append(r)
            elif r["kind"] == "thr":
                thr.setdefault(r["size"], []).append(r)
            elif r["kind"] == "idle":
                idle.append(r)
    return lat, thr, idle


limits = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, "limit-rep*.json")))]
memcpy16 = med([m["gbs_median"] for l in limits for m in l["memcpy"] if m["bytes"] == 16 << 20]) if limits else None

print(f"memcpy 16 MiB (physical_limit.c, median of {len(limits)} runs): {memcpy16} GB/s")
futex = [w for p in sorted(glob.glob(os.path.join(out, "futex-rep*.json"))) for w in json.load(open(p))["wake_ns"]]
if futex:
    print(f"Floor: C futex wake of a process idle 1 s (futex_wake_floor.c), p50 of {len(futex)}: {med(futex) / 1e3:.1f} µs")
print()
reader_counts = sorted({int(os.path.basename(p).split("-")[1][1:]) for p in glob.glob(os.path.join(out, "ccl-R*-rep*.jsonl"))})
for readers in reader_counts:
    ours = ccl_rows(readers)
    lat, thr, idle = vllm_rows(readers)
    if not ours:
        continue
    reps = len(next(iter(ours.values())))
    print(f"### {readers} reader(s), medians of {reps} interleaved runs\n")
    print("| size | one-way p50 µs: swift-ccl | vLLM | ratio | p99 µs: swift-ccl | vLLM | msgs/s: swift-ccl | vLLM | GB/s per reader: swift-ccl | vLLM | wrong |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sorted(ours):
        o = ours[size]
        p50 = med([r["p50_ns"] for r in o]) / 1e3
        p99 = med([r["p99_ns"] for r in o]) / 1e3
        mps = med([r["msgs_per_s"] for r in o])
        gbs = med([r["gb_per_s"] for r in o])
        wrong = sum(r["wrong"] for r in o)
        v = lat.get(size, [])
        vp50 = med([r["half_rtt_p50_us"] for r in v]) if v else None
        vp99 = med([r["half_rtt_p99_us"] for r in v]) if v else None
        t = thr.get(size, [])
        vmps = med([r["msgs_per_s"] for r in t]) if t else None
        vgbs = med([r["MB_per_s"] for r in t]) / 1e3 if t else None
        fmt = lambda x, f="{:.2f}": "–" if x is None else f.format(x)
        ratio = f"{vp50 / p50:.0f}×" if vp50 else "–"
        print(f"| {size} | {p50:.2f} | {fmt(vp50, '{:.1f}')} | {ratio} | {p99:.2f} | {fmt(vp99, '{:.1f}')} | "
              f"{mps:,.0f} | {fmt(vmps, '{:,.0f}')} | {gbs:.2f} | {fmt(vgbs)} | {wrong} |")
    o = next(iter(ours.values()))
    idle_cpu = med([r["idle_cpu_pct"] for r in o])
    wake = med([r["wake_p50_ns"] for r in o]) / 1e3
    vcpu = med([r["cpu_pct_next5s_total"] for r in idle]) if idle else None
    vcpu_first = med([r["cpu_pct_first5s_total"] for r in idle]) if idle else None
    vwake = med([w for r in idle for w in r["wake_latency_us"]]) if idle else None
    print(f"\nIdle readers, all together: swift-ccl {idle_cpu:.3f} % CPU (whole idle time), wake-up one-way p50 {wake:.1f} µs; "
          f"vLLM {vcpu_first} % CPU in the first 5 s, {vcpu} % after, wake-up {vwake} µs.")
    floors = [r["wake_floor_p50_ns"] for r in o if r.get("wake_floor_p50_ns")]
    if floors:
        floor = med(floors) / 1e3
        print(f"Wake-up floor in the same rounds (a futex sleeper idle as long): {floor:.1f} µs; the queue's wake-up is {wake / floor:.2f}× it.")
    if memcpy16 and 16 << 20 in ours:
        g = med([r["gb_per_s"] for r in ours[16 << 20]])
        print(f"16 MiB throughput per reader: {g:.2f} GB/s = {100 * g / memcpy16:.0f} % of memcpy ({memcpy16} GB/s).")
    print()
