#!/usr/bin/env python3
"""Prints the BENCHMARKS.md tables of the engine micro-benchmarks (pipeline, reduce_by_key,
scheduler, window) from a run of `cargo bench -p dstream-benches --bench NAME`.

Usage: python3 benches/scripts/micro_table.py NAME BENCH_STDERR_LOG [TARGET_DIR]

Times are the mean point estimates criterion writes to
TARGET_DIR/criterion/<group>/<benchmark>/new/estimates.json; sizes come from the lines each
bench prints to stderr (`pipeline-size`, `reduce-size`, `window-size`, `window-once`).
"""
import json, os, re, sys

name, log = sys.argv[1], open(sys.argv[2]).read()
target = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "..", "..", "target")


def mean_ns(group, bench):
    path = os.path.join(target, "criterion", group, bench, "new", "estimates.json")
    return json.load(open(path))["mean"]["point_estimate"]


def fields(tag):
    m = re.search(tag + r" (.*)", log)
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", m.group(1))}


if name == "pipeline":
    size = fields("pipeline-size")
    records = size["records"]
    base = mean_ns("pipeline", "loop")
    print(f"{int(records)} records, {int(size['words'])} words, {int(size['pairs'])} pairs out\n")
    print("| variant | ms/iteration | records/s | ns/record | time / loop |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for bench in ["loop", "loop_chunked", "local_vec", "local_iter", "step_vec", "step_iter"]:
        t = mean_ns("pipeline", bench)
        print(f"| {bench} | {t / 1e6:.1f} | {records / t * 1e9:,.0f} | {t / records:.0f} | {t / base:.2f} |")
elif name == "reduce_by_key":
    size = fields("reduce-size")
    words = size["words"]
    base = mean_ns("reduce_by_key", "loop")
    print(f"{int(size['records'])} records, {int(words)} words, {int(size['distinct'])} distinct\n")
    print("| variant | workers (cores) | partitions | ms/iteration | words/s | words/s per core | time / loop |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for bench in ["loop", "loop_owned"]:
        t = mean_ns("reduce_by_key", bench)
        print(f"| {bench} | 1 | - | {t / 1e6:.1f} | {words / t * 1e9:,.0f} | {words / t * 1e9:,.0f} | {t / base:.2f} |")
    for workers in [1, 2]:
        for partitions in [2, 8]:
            t = mean_ns("reduce_by_key", f"w{workers}_p{partitions}")
            rate = words / t * 1e9
            print(f"| dstream | {workers} | {partitions} | {t / 1e6:.1f} | {rate:,.0f} | {rate / workers:,.0f} "
                  f"| {t / base:.2f} |")
elif name == "scheduler":
    print("| mode | workers | tasks/job | µs/job | µs/task | tasks/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for mode in ["wire", "local"]:
        for workers in [1, 4]:
            for tasks in [1, 16, 256]:
                t = mean_ns(f"scheduler_{mode}", f"w{workers}_t{tasks}")
                print(f"| {mode} | {workers} | {tasks} | {t / 1e3:.1f} | {t / 1e3 / tasks:.2f} "
                      f"| {tasks / t * 1e9:,.0f} |")
elif name == "window":
    distinct = {int(b): int(d) for b, d in re.findall(r"window-size op=window_inv batches=(\d+) .*?distinct=(\d+)", log)}
    once = {int(b): float(ms) for b, ms in re.findall(r"window-once op=window_plain batches=(\d+) slide_ms=([\d.]+)", log)}
    base = mean_ns("window_inv", "slide_10")
    print("| window (batches) | distinct words | incremental ms/slide | incremental / at 10 | plain ms/slide "
          "| plain / incremental |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for batches in [10, 100, 1000]:
        inv = mean_ns("window_inv", f"slide_{batches}")
        if batches in once:
            plain, note = once[batches] * 1e6, " (one slide)"
        else:
            plain, note = mean_ns("window_plain", f"slide_{batches}"), ""
        print(f"| {batches} | {distinct.get(batches, 0)} | {inv / 1e6:.1f} | {inv / base:.2f} "
              f"| {plain / 1e6:.1f}{note} | {plain / inv:.1f} |")
else:
    sys.exit(f"unknown bench {name}")
