#!/usr/bin/env bash
# A/B of two nymgate builds through the same upstream and load generator (BENCHMARKS.md §1):
#   bash bench/ab.sh BASE_REV [TEST_REV]      (TEST_REV defaults to HEAD)
# Builds each revision's release binary from a git worktree (sharing target/, so only nymgate
# itself is rebuilt), then runs h2load against each build in turn, ROUNDS times interleaved:
# HTTP/1.1 keep-alive (64 connections) and HTTP/2 (16 connections x 8 streams), DURATION
# seconds each, on 127.0.0.1 through the upstream of bench/proxy.sh (nginx, one worker,
# `return 200`). Prints every run and the medians. On two shared cores a single run can be off
# by 20%: compare medians, on a quiet machine.
#
# Environment: DURATION (s, default 8), ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: bash bench/ab.sh BASE_REV [TEST_REV]}
TEST=${2:-HEAD}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
OUT=bench/out/ab-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

source bench/lib.sh
install_bench_tools

build() { # REV NAME
  local tree="$OUT/src-$2"
  git worktree add -q --detach "$tree" "$1"
  CARGO_TARGET_DIR="$PWD/target" cargo build --release --locked -q --manifest-path "$tree/Cargo.toml"
  cp target/release/nymgate "$OUT/nymgate-$2"
  git worktree remove --force "$tree"
  echo "$2: $(git rev-parse --short "$1")"
}
build "$BASE" base
build "$TEST" test

UP=18080 NYM=19443 NYM_ADMIN=19090
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$OUT/nymgate-test" certs dev --out "$OUT/certs" >/dev/null
write_upstream_conf "$OUT/nginx-up" $UP
nymgate_config $NYM $NYM_ADMIN >"$OUT/nymgate.toml"
nginx -p "$OUT/nginx-up" -c "$OUT/nginx-up/nginx.conf" & pids+=($!)

rate() { # h2load args...: requests/s of one run
  h2load "$@" -D "$DURATION" --warm-up-time=1 "https://127.0.0.1:$NYM/" 2>&1 |
    awk '/^finished in/ { gsub(",", "", $4); print int($4) }'
}
for round in $(seq "$ROUNDS"); do
  for build in base test; do
    "$OUT/nymgate-$build" serve --config "$OUT/nymgate.toml" 2>"$OUT/$build.log" & nym=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$NYM") 2>/dev/null && break; sleep 0.1; done
    kill -0 "$nym" 2>/dev/null || { echo "nymgate ($build) did not start; see $OUT/$build.log" >&2; exit 1; }
    h1=$(rate -c 64 -m 1 --h1)
    h2=$(rate -c 16 -m 8)
    kill "$nym"
    wait "$nym" 2>/dev/null || true
    echo "round $round $build h1 $h1 h2 $h2" | tee -a "$OUT/runs.txt"
  done
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for build in base test; do
  h1=$(awk -v b=$build '$3 == b { print $5 }' "$OUT/runs.txt" | median)
  h2=$(awk -v b=$build '$3 == b { print $7 }' "$OUT/runs.txt" | median)
  echo "median $build: HTTP/1.1 $h1 req/s, HTTP/2 $h2 req/s"
done | tee "$OUT/medians.txt"
echo "(raw output in $OUT)"
