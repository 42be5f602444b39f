#!/usr/bin/env python3
"""How often this machine does not run a thread that wants to run (bench/proxy.sh, BENCHMARKS.md §1).

usage: stalls.py SECONDS CPU

Pinned to CPU, on an otherwise idle machine, a thread sleeps 100 µs at a time and counts the
wake-ups that came more than 1 ms late. On a virtual machine these are the host not running
the vCPU (or not waking it from idle) in time. A p99 is the slowest 1% of requests, so stalls
that cover a fraction of a percent of the time, and the backlog each leaves behind, set it.
Prints "gaps_over_1ms gaps_over_5ms stalled_ms max_ms".
"""
import os
import sys
import time

seconds, cpu = float(sys.argv[1]), int(sys.argv[2])
os.sched_setaffinity(0, {cpu})
end = time.perf_counter() + seconds
last = time.perf_counter()
gaps = []
while last < end:
    time.sleep(0.0001)
    now = time.perf_counter()
    if now - last > 0.001:
        gaps.append(now - last)
    last = now
print(f"{len(gaps)} {sum(g > 0.005 for g in gaps)} {sum(gaps) * 1000:.1f} {max(gaps, default=0) * 1000:.2f}")
