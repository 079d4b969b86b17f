"""Medians and ranges of lines "ROUND npN[-OP] old|new SIZE:P50 ..." -> a markdown table."""
import re, statistics, sys
from collections import defaultdict
d = defaultdict(list)
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 3: continue
    np, build = parts[1], parts[2]
    for cell in parts[3:]:
        size, value = cell.split(":")
        d[(np, int(size), build)].append(float(value))
def name(b):
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if b >= 1 << shift and b % (1 << shift) == 0: return f"{b >> shift} {unit}"
    return f"{b} B"
builds = sorted({k[2] for k in d})
a, b = (builds + builds)[:2] if len(builds) == 1 else ("old", "new") if "old" in builds else builds[:2]
print(f"| ranks | bytes | {a} | {b} | {b} / {a} |\n|---|---|---|---|---|")
for np, size in sorted({(k[0], k[1]) for k in d}, key=lambda k: (k[0].partition("-")[2], int(k[0][2:].partition("-")[0]), k[1])):
    x, y = d[(np, size, a)], d[(np, size, b)]
    if not x or not y: continue
    g = lambda v: f"{v:.0f}" if v >= 100 else f"{v:.3g}"
    f = lambda v: f"{g(statistics.median(v))} ({g(min(v))}–{g(max(v))})"
    print(f"| {np[2:]} | {name(size)} | {f(x)} | {f(y)} | {statistics.median(y) / statistics.median(x):.2f} |")
