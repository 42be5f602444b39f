#!/usr/bin/env bash
# Passthrough benchmark (BENCHMARKS.md): the same upstream and the same load generator, in one
# run on this machine:
#   direct   h2load -> upstream nginx (plain HTTP; h2c for HTTP/2)
#   nginx    h2load -> nginx 1.22 (TLS) -> upstream
#   nymgate  h2load -> nymgate (TLS)    -> upstream
# For HTTP/1.1 keep-alive and HTTP/2: peak requests/s (closed loop, h2load), then p50/p99 of all
# three at half of nymgate's peak (open loop, Poisson arrivals: examples/paced_load.rs). Last,
# nymgate's resident memory with N idle keep-alive TLS connections. Everything is on 127.0.0.1;
# every run is bounded in time. First, bench/stalls.py records how often this machine leaves a
# runnable thread waiting more than 1 ms, since that is what a p99 here is made of.
#
# Peaks and latencies are measured REPEAT times, the three paths interleaved, and the median
# reported with every run beside it: on two shared cores one run can be off by 20%, one p99 by 2x.
#
# Environment: DURATION (s, default 10), CONNS (default 64), IDLE (default 10000), REPEAT (3),
# PARTS ("throughput memory" by default; "memory" alone measures only the idle connections),
# PARK_AFTER (limits.park_after for the idle test, e.g. 1s; default nymgate's), UPSTREAM_EXTRA
# (extra [upstream] lines, e.g. UPSTREAM_EXTRA='pool_per_client_connection = true').
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
IDLE=${IDLE:-10000}
REPEAT=${REPEAT:-3}
PARTS=${PARTS:-throughput memory}
OUT=bench/out/proxy-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

source bench/lib.sh
install_bench_tools

cargo build --release --locked -q
# Its own invocation: an example builds with the dev-dependencies' features (tokio's test-util),
# which must not reach the nymgate binary under test.
cargo build --release --locked -q --example paced_load
PACED=target/release/examples/paced_load
ulimit -n "$(ulimit -Hn)"  # 10,000 idle connections need more than the usual 1024
target/release/nymgate certs dev --out "$OUT/certs" >/dev/null

UP=18080 UP_H2C=18081 NGINX=18443 NYM=19443 NYM_ADMIN=19090 NYM_IDLE=19444 NYM_IDLE_ADMIN=19091
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

write_upstream_conf "$OUT/nginx-up" $UP $UP_H2C
mkdir -p "$OUT/nginx-proxy/logs"
cat >"$OUT/nginx-proxy/nginx.conf" <<EOF
worker_processes auto;
daemon off;
error_log $OUT/nginx-proxy/logs/error.log warn;
pid $OUT/nginx-proxy/nginx.pid;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream platform { server 127.0.0.1:$UP; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX ssl http2;
    ssl_certificate $OUT/certs/localhost.pem;
    ssl_certificate_key $OUT/certs/localhost-key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://platform;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
EOF
nymgate_config $NYM $NYM_ADMIN >"$OUT/nymgate.toml"
# Idle keep-alive connections park between requests (src/conn_io.rs) and live until
# limits.idle_timeout, 120 s here, longer than the 30 s the idle test holds them.
nymgate_config $NYM_IDLE $NYM_IDLE_ADMIN "${PARK_AFTER:+park_after = \"$PARK_AFTER\"}" >"$OUT/nymgate-idle.toml"

nginx -p "$OUT/nginx-up" -c "$OUT/nginx-up/nginx.conf" & pids+=($!)
nginx -p "$OUT/nginx-proxy" -c "$OUT/nginx-proxy/nginx.conf" & pids+=($!)
target/release/nymgate serve --config "$OUT/nymgate.toml" 2>"$OUT/nymgate.log" & pids+=($!)
for port in $UP $UP_H2C $NGINX $NYM; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
# Every server must be ours: a port answered by a leftover process would measure the wrong thing.
for p in "${pids[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "a server failed to start (port in use?); see $OUT" >&2; exit 1; }
done

declare -A URL_H1=([direct]="http://127.0.0.1:$UP/" [nginx]="https://127.0.0.1:$NGINX/" [nymgate]="https://127.0.0.1:$NYM/")
declare -A URL_H2=([direct]="http://127.0.0.1:$UP_H2C/" [nginx]="https://127.0.0.1:$NGINX/" [nymgate]="https://127.0.0.1:$NYM/")
H2_CONNS=$((CONNS / 4)) H2_STREAMS=8

peak() { # name proto url
  local args=(-c "$CONNS" -m 1 --h1)
  [[ $2 == h2 ]] && args=(-c "$H2_CONNS" -m "$H2_STREAMS")
  h2load "${args[@]}" -D "$DURATION" --warm-up-time=2 "$3" >"$OUT/peak-$1-$2.txt" 2>&1
  python3 bench/load_stats.py throughput "$OUT/peak-$1-$2.txt"
}
at_rate() { # name proto url total_rps run
  # Open loop: requests arrive as a Poisson process at total_rps and each is timed from when it
  # was due, over as many connections (and HTTP/2 streams) as the peak runs used; 2 s of
  # warm-up after the handshakes are left out (examples/paced_load.rs says why not oha or h2load).
  local args=(--connections "$CONNS")
  [[ $2 == h2 ]] && args=(--http 2 --connections "$H2_CONNS" --streams "$H2_STREAMS")
  "$PACED" "${args[@]}" --rate "$4" --duration "${DURATION}s" --warm-up 2s --seed "$5" \
    --ca "$OUT/certs/dev-ca.pem" "$3" >"$OUT/lat-$1-$2-$5.json" 2>"$OUT/lat-$1-$2-$5.err" || true
  python3 bench/load_stats.py latency "$OUT/lat-$1-$2-$5.json"
}

{
  echo "# Passthrough benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; $(uname -sr)."
  echo "Load generators, on the same machine: $(h2load --version | head -1) for the peaks (closed loop),"
  echo "examples/paced_load.rs for the latencies (Poisson arrivals, 2 s warm-up left out). nginx $(nginx -v 2>&1 | cut -d/ -f2);"
  echo "nymgate $(git rev-parse --short HEAD). DURATION=${DURATION}s, HTTP/1.1: $CONNS connections;"
  echo "HTTP/2: $H2_CONNS connections x $H2_STREAMS streams. Access logs off in nginx; nymgate log level warn."
  echo "Upstream: nginx, one worker, \`return 200\`. Proxy under test: nginx with worker_processes auto (2),"
  echo "nymgate with server.workers at its default (one per CPU: 2). Peaks and latencies: median of $REPEAT"
  echo "interleaved runs."
  echo
  echo "Stalls before the runs, idle machine (bench/stalls.py, 10 s per CPU: a thread sleeping 100 µs woken"
  echo "more than 1 ms late):"
  probes=()
  for cpu in $(seq 0 $(($(nproc) - 1))); do python3 bench/stalls.py 10 "$cpu" >"$OUT/stalls-$cpu.txt" & probes+=($!); done
  wait "${probes[@]}"
  for cpu in $(seq 0 $(($(nproc) - 1))); do
    read -r over1 over5 stalled max <"$OUT/stalls-$cpu.txt"
    echo "CPU $cpu: $over1 wake-ups over 1 ms late ($over5 over 5 ms), $stalled ms in all, the longest $max ms."
  done
  echo
} >"$OUT/results.md"

[[ " $PARTS " == *" throughput "* ]] || REPEAT=0
median() { python3 -c "import statistics,sys; print(int(statistics.median(int(x) for x in sys.argv[1:])))" "$@"; }
for proto in h1 h2; do
  ((REPEAT)) || break
  declare -A PEAK=() RUNS=()
  for rep in $(seq "$REPEAT"); do
    for name in direct nginx nymgate; do
      url=${URL_H1[$name]}; [[ $proto == h2 ]] && url=${URL_H2[$name]}
      r=$(peak "$name-$rep" "$proto" "$url")
      RUNS[$name]="${RUNS[$name]:-} $r"
      echo "peak $proto $name run $rep: $r req/s" >&2
    done
  done
  for name in direct nginx nymgate; do PEAK[$name]=$(median ${RUNS[$name]}); done
  half=$((PEAK[nymgate] / 2))
  declare -A P50=() P99=()
  for rep in $(seq "$REPEAT"); do
    for name in direct nginx nymgate; do
      url=${URL_H1[$name]}; [[ $proto == h2 ]] && url=${URL_H2[$name]}
      read -r p50 p99 count bad < <(at_rate "$name" "$proto" "$url" "$half" "$rep")
      echo "latency $proto $name run $rep at $half req/s: p50 $p50 ms p99 $p99 ms ($count requests, $bad failed or not 2xx)" >&2
      P50[$name]="${P50[$name]:-} $p50"; P99[$name]="${P99[$name]:-} $p99"
    done
  done
  {
    echo "## $( [[ $proto == h1 ]] && echo 'HTTP/1.1 keep-alive' || echo 'HTTP/2')"
    echo
    echo "| path | peak req/s (median) | runs | p50 ms at $half req/s | p99 ms at $half req/s | p99 runs | p99 added |"
    echo "| --- | ---: | --- | ---: | ---: | --- | ---: |"
  } >>"$OUT/results.md"
  direct_p99=$(python3 bench/load_stats.py median ${P99[direct]})
  for name in direct nginx nymgate; do
    p50=$(python3 bench/load_stats.py median ${P50[$name]})
    p99=$(python3 bench/load_stats.py median ${P99[$name]})
    added=$(python3 -c "print(f'{$p99 - $direct_p99:+.2f}')")
    echo "| $name | ${PEAK[$name]} |${RUNS[$name]} | $p50 | $p99 |${P99[$name]} | $added |" >>"$OUT/results.md"
  done
  ratio=$(python3 -c "print(f'{${PEAK[nymgate]}/${PEAK[nginx]}:.2f}')")
  echo -e "\nnymgate/nginx throughput ratio: **$ratio**\n" >>"$OUT/results.md"
done

# Resident memory with IDLE idle keep-alive TLS connections: a fresh nymgate, then the nginx
# proxy (master and workers summed), each holding the same connections for 30 s.
rss() { local total=0 p; for p in "$@"; do total=$((total + $(awk '/VmRSS/{print $2}' "/proc/$p/status"))); done; echo $total; }
hold_idle() { # port name -> prints "held" once the connections are open; caller reads memory
  rm -f "$OUT/idle-$2.ready"
  python3 bench/idle_conns.py 127.0.0.1 "$1" "$IDLE" 30 "$OUT/idle-$2.ready" 2>"$OUT/idle-$2.txt" & holder=$!
  pids+=($holder)
  for _ in $(seq 600); do [[ -s $OUT/idle-$2.ready ]] && break; sleep 0.5; done
  sleep 2
}
target/release/nymgate serve --config "$OUT/nymgate-idle.toml" 2>"$OUT/nymgate-idle.log" & idle_pid=$!
pids+=($idle_pid)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$NYM_IDLE) 2>/dev/null && break; sleep 0.1; done
base=$(rss $idle_pid)
hold_idle $NYM_IDLE nymgate
held=$(cat "$OUT/idle-nymgate.ready" 2>/dev/null || echo 0)
with=$(rss $idle_pid)
metrics=$(curl -s "http://127.0.0.1:$NYM_IDLE_ADMIN/metrics")
open=$(awk '/^nymgate_open_connections /{print $2}' <<<"$metrics")
parked=$(awk '/^nymgate_parked_connections /{print $2}' <<<"$metrics")
kill $holder 2>/dev/null || true
wait $holder 2>/dev/null || true

nginx_master=$(cat "$OUT/nginx-proxy/nginx.pid")
nginx_pids() { echo "$nginx_master" $(pgrep -P "$nginx_master"); }
nginx_base=$(rss $(nginx_pids))
hold_idle $NGINX nginx
nginx_held=$(cat "$OUT/idle-nginx.ready" 2>/dev/null || echo 0)
nginx_with=$(rss $(nginx_pids))
kill $holder 2>/dev/null || true
per_conn() { echo $(( ($2 - $1) * 1024 / ($3 > 0 ? $3 : 1) )); }
{
  echo "## Memory"
  echo
  echo "| server | resident before | resident with idle TLS keep-alive connections | connections | per connection |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "| nymgate | $((base / 1024)) MiB | $((with / 1024)) MiB | $held (open $open, parked $parked) | $(per_conn $base $with $held) B |"
  echo "| nginx (TLS, master + workers) | $((nginx_base / 1024)) MiB | $((nginx_with / 1024)) MiB | $nginx_held | $(per_conn $nginx_base $nginx_with $nginx_held) B |"
  echo
} >>"$OUT/results.md"

cat "$OUT/results.md"
echo "(raw output in $OUT)" >&2
