#!/usr/bin/env python3
"""Summarise load-generator runs for bench/proxy.sh.

usage: load_stats.py throughput H2LOAD_REPORT   -> prints req/s (h2load's closed-loop report)
       load_stats.py latency PACED_LOAD_JSON    -> prints "p50_ms p99_ms count failed+non2xx"
       load_stats.py median P99_MS...           -> prints the median
       load_stats.py ok_throughput H2LOAD_REPORT -> prints "2xx_per_s all_per_s done_but_not_2xx"
                                                   (bench/hostile.sh: a 503 is fast, not served)

`latency` reads the JSON line of `examples/paced_load.rs`, whose warm-up is already left out.
"""
import json
import re
import statistics
import sys


def throughput(path):
    text = open(path).read()
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text)
    if not m:
        sys.exit(f"no throughput line in {path}:\n{text}")
    failed = re.search(r"requests: .*?(\d+) failed", text)
    if failed and int(failed.group(1)) > 0:
        print(f"warning: {failed.group(1)} failed requests in {path}", file=sys.stderr)
    print(f"{float(m.group(1)):.0f}")


def ok_throughput(path):
    text = open(path).read()
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed", text)
    ok = re.search(r"status codes: (\d+) 2xx", text)
    if not (m and done and ok):
        sys.exit(f"no throughput lines in {path}:\n{text}")
    rps, finished, ok = float(m.group(1)), int(done.group(1)), int(ok.group(1))
    share = ok / finished if finished else 0.0
    print(f"{rps * share:.0f} {rps:.0f} {finished - ok}")


def latency(path):
    text = open(path).read().strip()
    try:
        run = json.loads(text.splitlines()[-1])
    except (IndexError, ValueError):
        sys.exit(f"no paced_load summary in {path}:\n{text}")
    if run["answered"] == 0:
        sys.exit(f"no answered requests in {path}")
    bad = run["failed"] + run["not_2xx"]
    print(f"{run['p50_ms']:.3f} {run['p99_ms']:.3f} {run['measured']} {bad}")


if __name__ == "__main__":
    if sys.argv[1] == "throughput":
        throughput(sys.argv[2])
    elif sys.argv[1] == "ok_throughput":
        ok_throughput(sys.argv[2])
    elif sys.argv[1] == "latency":
        latency(sys.argv[2])
    elif sys.argv[1] == "median":
        print(f"{statistics.median(float(x) for x in sys.argv[2:]):.3f}")
    else:
        sys.exit(__doc__)
