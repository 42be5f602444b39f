#!/usr/bin/env python3
"""Summarise load-generator runs for bench/proxy.sh.

usage: load_stats.py throughput H2LOAD_REPORT   -> prints req/s (h2load's closed-loop report)
       load_stats.py latency OHA_CSV WARM_UP_S  -> prints "p50_ms p99_ms count non2xx"

`latency` reads oha's per-request CSV (`--output-format csv`) and leaves out the requests due
in the first WARM_UP_S seconds: oha has no warm-up of its own, and the TLS handshakes of all its
connections at the start hold back the first requests, which with --latency-correction are
timed from when they were due. Steady state is what the target is about.
"""
import csv
import re
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


def latency(path, warm_up):
    durations, bad = [], 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if float(row["request-start"]) < warm_up:
                continue
            if not row["status"].startswith("2"):
                bad += 1
            durations.append(float(row["request-duration"]))
    if not durations:
        sys.exit(f"no requests after the warm-up in {path}")
    durations.sort()

    def pct(p):
        return durations[min(len(durations) - 1, int(p / 100 * len(durations)))] * 1000

    print(f"{pct(50):.3f} {pct(99):.3f} {len(durations)} {bad}")


if __name__ == "__main__":
    if sys.argv[1] == "throughput":
        throughput(sys.argv[2])
    else:
        latency(sys.argv[2], float(sys.argv[3]))
