#!/usr/bin/env python3
"""Summarise h2load runs: throughput from its report, latency percentiles from --log-file.

usage: h2load_stats.py throughput REPORT      -> prints req/s
       h2load_stats.py latency LOGFILE         -> prints "p50_ms p99_ms count non2xx"
"""
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


def latency(path):
    durations, bad = [], 0
    for line in open(path):
        parts = line.split()
        if len(parts) < 3:
            continue
        status, micros = int(parts[1]), int(parts[2])
        if not 200 <= status < 300:
            bad += 1
        durations.append(micros)
    if not durations:
        sys.exit(f"no requests logged in {path}")
    durations.sort()

    def pct(p):
        return durations[min(len(durations) - 1, int(p / 100 * len(durations)))] / 1000

    print(f"{pct(50):.3f} {pct(99):.3f} {len(durations)} {bad}")


if __name__ == "__main__":
    {"throughput": throughput, "latency": latency}[sys.argv[1]](sys.argv[2])
