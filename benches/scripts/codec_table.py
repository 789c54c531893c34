#!/usr/bin/env python3
"""Prints the BENCHMARKS.md codec tables from a run of `cargo bench -p dstream-benches --bench codec`.

Usage: python3 benches/scripts/codec_table.py BENCH_STDERR_LOG [TARGET_DIR]

Sizes come from the `codec-size` lines the bench prints to stderr; times are the mean point
estimates criterion writes to TARGET_DIR/criterion/<payload>/<op>_<codec>/new/estimates.json.
ns/record = mean / records; MB/s = raw payload bytes / mean (1 MB = 10^6 bytes).
"""
import json, os, re, sys

RECORDS = {"word_counts": 10_000, "lines": 10_000, "pairs": 10_000, "msg": 1}
CODECS = ["postcard", "bincode1", "bincode2", "bitcode"]

log = open(sys.argv[1]).read()
target = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "target")
sizes, raw = {}, {}
for p, c, r, e in re.findall(r"codec-size payload=(\w+) codec=(\w+) raw=(\d+) encoded=(\d+)", log):
    sizes[p, c], raw[p] = int(e), int(r)

def mean_ns(payload, op, codec):
    path = os.path.join(target, "criterion", payload, f"{op}_{codec}", "new", "estimates.json")
    return json.load(open(path))["mean"]["point_estimate"]

for p, n in RECORDS.items():
    print(f"\n**{p}** ({n} record{'s' if n > 1 else ''}, {raw[p]} raw bytes)\n")
    print("| format | encode ns/record | encode MB/s | decode ns/record | decode MB/s | encoded bytes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for c in CODECS:
        enc, dec = mean_ns(p, "encode", c), mean_ns(p, "decode", c)
        mbs = lambda ns: raw[p] / ns * 1e3
        print(f"| {c} | {enc / n:.1f} | {mbs(enc):.0f} | {dec / n:.1f} | {mbs(dec):.0f} | {sizes[p, c]} |")
