"""Prints "BYTES:P50 ..." from an anchor benchmark's JSON lines (stdin, or the file given)."""
import json, sys
lines = open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin
rows = [json.loads(l) for l in lines if l.startswith("{")]
print(" ".join("%d:%.4g" % (r["bytes_per_rank"], r["p50_us"]) for r in rows if r.get("type") == "result"))
