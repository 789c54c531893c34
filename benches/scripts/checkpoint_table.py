#!/usr/bin/env python3
"""Prints the BENCHMARKS.md checkpoint table from a run of `cargo bench -p dstream-benches --bench checkpoint`.

Usage: python3 benches/scripts/checkpoint_table.py BENCH_STDERR_LOG [TARGET_DIR]

Sizes come from the `checkpoint-size` lines the bench prints to stderr; times are the mean point
estimates criterion writes to TARGET_DIR/criterion/checkpoint_<backend>/<op>_l<level>/new/estimates.json.
MB/s = encoded body bytes / mean (1 MB = 10^6 bytes); ratio = body bytes / file bytes.
"""
import json, os, re, sys

log = open(sys.argv[1]).read()
target = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "target")
rows = re.findall(r"checkpoint-size backend=(\w+) level=(-?\d+) records=(\d+) body=(\d+) file=(\d+)", log)

def mean_ns(backend, op, level):
    path = os.path.join(target, "criterion", f"checkpoint_{backend}", f"{op}_l{level}", "new", "estimates.json")
    return json.load(open(path))["mean"]["point_estimate"]

print("| store | level | write ms | write MB/s | read ms | read MB/s | body bytes | file bytes | ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for backend, level, records, body, file in rows:
    body, file = int(body), int(file)
    w, r = mean_ns(backend, "write", level), mean_ns(backend, "read", level)
    print(f"| {backend} | {level} | {w / 1e6:.1f} | {body / w * 1e3:.0f} | {r / 1e6:.1f} | {body / r * 1e3:.0f} "
          f"| {body} | {file} | {body / file:.2f} |")
