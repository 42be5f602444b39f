#!/usr/bin/env bash
# Hostile-load benchmark (BENCHMARKS.md, "Hostile load"; issue 27): ordinary clients' throughput
# and p99 and nymgate's memory, file descriptors and platform connections, without an attack and
# while bench/hostile_clients.py holds open
#   STALLED  TLS clients that asked for a 64 MiB file and never read a byte,
#   HALFOPEN TCP connections that sent all but the last 100 bytes of a ~15,000-byte ClientHello,
#   TUNNELS  upgraded WebSocket tunnels, idle,
# re-opening whatever nymgate cuts by its deadlines (counted). Everything is on 127.0.0.1 and
# every step is bounded in time. Phases:
#   1. a fresh nymgate: resident memory before, with only the HALFOPEN half-open handshakes held,
#      and after they are gone; then HALFOPEN handshakes declaring a 64 KiB ClientHello, counting
#      how many are refused at once (closed within 2 s of their last byte).
#   2. a second fresh nymgate, REPEAT times: ordinary load alone (h2load closed loop, HTTP/1.1
#      keep-alive, CONNS connections, DURATION s; then paced_load's p99 at half of that peak),
#      then the same two under the whole attack. RSS (VmRSS), open fds (/proc/PID/fd) and
#      established platform connections (ss, to the upstream's port) are sampled every 0.5 s.
#
# Environment: STALLED (1000), HALFOPEN (2000), TUNNELS (100), DURATION (s, 10), REPEAT (1),
# CONNS (64), BIG_HELLO (bytes the refused ClientHello declares: 65000, just under rustls's own
# 0xffff limit on a handshake message, so that only nymgate's 16 KiB bound can refuse it),
# UPSTREAM_MAX (upstream.max_connections per worker when the binary has it; 256), PERF (set:
# record a system-wide `perf` profile of each throughput window into perf-NAME.data),
# NYMGATE_BIN and PACED_BIN (use these binaries instead of building; the binary is copied into
# the output directory first either way, since a shared target directory may be rebuilt).
set -euo pipefail
cd "$(dirname "$0")/.."

STALLED=${STALLED:-1000}
HALFOPEN=${HALFOPEN:-2000}
TUNNELS=${TUNNELS:-100}
DURATION=${DURATION:-10}
REPEAT=${REPEAT:-1}
CONNS=${CONNS:-64}
UPSTREAM_MAX=${UPSTREAM_MAX:-256}
BIG_HELLO=${BIG_HELLO:-65000}
OUT=bench/out/hostile-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT/bin"
OUT=$(cd "$OUT" && pwd)

source bench/lib.sh
install_bench_tools

TARGET=${CARGO_TARGET_DIR:-target}
if [[ -z ${NYMGATE_BIN:-} ]]; then
  cargo build --release --locked -q
  NYMGATE_BIN=$TARGET/release/nymgate
fi
if [[ -z ${PACED_BIN:-} ]]; then
  # Its own invocation: the example's dev-dependency features must not reach nymgate's binary.
  cargo build --release --locked -q --example paced_load
  PACED_BIN=$TARGET/release/examples/paced_load
fi
cp "$NYMGATE_BIN" "$OUT/bin/nymgate"
cp "$PACED_BIN" "$OUT/bin/paced_load"
NYM_BIN=$OUT/bin/nymgate PACED=$OUT/bin/paced_load

# Every held connection is a descriptor in nymgate and one in the attacker (and one more in
# nymgate per platform connection): far over the usual 1024.
ulimit -n "$(ulimit -Hn)"
need=$(((STALLED + HALFOPEN + TUNNELS) * 2 + CONNS * 2 + 1024))
(($(ulimit -n) >= need)) || echo "warning: ulimit -n is $(ulimit -n), the run wants about $need" >&2
"$NYM_BIN" certs dev --out "$OUT/certs" >/dev/null

UP=28080 WS=28091 NYM=29443 NYM_ADMIN=29090
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -f "$OUT/www/big"
}
trap cleanup EXIT

# The platform: nginx, one worker, `return 200` for ordinary clients, a 64 MiB file for the
# stalled readers and /ws proxied to hostile_clients.py's WebSocket endpoint. Its own timeouts
# are long so that nymgate's deadlines, not the platform's, decide what is cut.
mkdir -p "$OUT/nginx-up/logs" "$OUT/www"
truncate -s 64M "$OUT/www/big"
cat >"$OUT/nginx-up/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $(ulimit -n);
daemon off;
error_log $OUT/nginx-up/logs/error.log warn;
pid $OUT/nginx-up/nginx.pid;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  send_timeout 600s;
  sendfile on;
  server {
    listen 127.0.0.1:$UP backlog=4096;
    location / { return 200 "ok\n"; }
    location = /big { alias $OUT/www/big; default_type application/octet-stream; }
    location /ws {
      proxy_pass http://127.0.0.1:$WS;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
    }
  }
}
EOF

# upstream.max_connections (the bound on platform connections, per worker) when this binary
# has it; the config is checked with it first and the run says which it was. server.workers is
# left at its default, one per CPU (available_parallelism, which is nproc here).
WORKERS=$(nproc)
LIMITS='tls_handshake_timeout = "10s"'
UPSTREAM_LINES="max_connections = $UPSTREAM_MAX"
nymgate_config $NYM $NYM_ADMIN "$LIMITS" "$UPSTREAM_LINES" >"$OUT/nymgate.toml"
if "$NYM_BIN" check --config "$OUT/nymgate.toml" >"$OUT/check-bound.txt" 2>&1; then
  BOUND=$((WORKERS * UPSTREAM_MAX))
  BOUND_NOTE="upstream.max_connections = $UPSTREAM_MAX per worker x $WORKERS workers = $BOUND"
  cp "$OUT/check-bound.txt" "$OUT/check.txt"
elif grep -q 'max_connections' "$OUT/check-bound.txt"; then
  UPSTREAM_LINES=""
  nymgate_config $NYM $NYM_ADMIN "$LIMITS" >"$OUT/nymgate.toml"
  "$NYM_BIN" check --config "$OUT/nymgate.toml" >"$OUT/check.txt" 2>&1 ||
    { echo "nymgate check refused the config: see $OUT/check.txt" >&2; exit 1; }
  BOUND=""
  BOUND_NOTE="none: this binary has no upstream.max_connections (its config check refused the field)"
else
  echo "nymgate check refused the config: see $OUT/check-bound.txt" >&2
  exit 1
fi
echo "platform connection bound: $BOUND_NOTE" >&2

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
start_nymgate() { # log name -> sets NYM_PID
  "$NYM_BIN" serve --config "$OUT/nymgate.toml" 2>"$OUT/nymgate-$1.log" & NYM_PID=$!
  pids+=($NYM_PID)
  wait_port $NYM || { echo "nymgate did not start; see $OUT/nymgate-$1.log" >&2; exit 1; }
  # A few requests first, so what is lazily set up on the first connections is not counted
  # as the attack's.
  for _ in 1 2 3 4; do curl -sk --max-time 5 -o /dev/null "https://127.0.0.1:$NYM/" || true; done
}
stop_nymgate() { kill "$NYM_PID" 2>/dev/null || true; timeout 40 tail --pid="$NYM_PID" -f /dev/null || kill -9 "$NYM_PID" 2>/dev/null || true; }

nginx -p "$OUT/nginx-up" -c "$OUT/nginx-up/nginx.conf" & pids+=($!)
python3 bench/hostile_clients.py serve-ws $WS 2>"$OUT/ws.log" & pids+=($!)
wait_port $UP && wait_port $WS || { echo "the upstream did not start; see $OUT" >&2; exit 1; }
for p in "${pids[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "a server failed to start (port in use?); see $OUT" >&2; exit 1; }
done

rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
platform() { ss -Htn state established "( dport = :$UP )" | wc -l; }
# The host's TCP memory in pages (/proc/net/sockstat): past net.ipv4.tcp_mem's middle value the
# kernel trims every socket's buffers, the ordinary clients' included.
tcpmem() { awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
# Samples "time rss_kib fds platform_connections tcp_pages" every 0.5 s into $OUT/samples-NAME.txt.
sample_start() { # NAME
  (while kill -0 "$NYM_PID" 2>/dev/null; do
    echo "$(date +%s.%N) $(rss $NYM_PID) $(fds $NYM_PID) $(platform) $(tcpmem)"
    sleep 0.5
  done) >"$OUT/samples-$1.txt" 2>/dev/null & SAMPLER=$!
}
sample_stop() { # NAME -> prints "rss_max rss_end fds_max fds_end platform_max tcp_pages_max" (RSS in KiB)
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  echo "$(date +%s.%N) $(rss $NYM_PID) $(fds $NYM_PID) $(platform) $(tcpmem)" >>"$OUT/samples-$1.txt"
  awk '{ if ($2 > r) r = $2; if ($3 > f) f = $3; if ($4 > p) p = $4; if ($5 > t) t = $5; re = $2; fe = $3 }
       END { print r, re, f, fe, p, t }' "$OUT/samples-$1.txt"
}
metrics() { curl -s --max-time 5 "http://127.0.0.1:$NYM_ADMIN/metrics" | grep '^nymgate_' || true; }
HOLD=$((DURATION * 2 + 120)) # the longest the attacker may live in one attack phase (s)
attack_start() { # NAME STALLED HALFOPEN TUNNELS -> waits until held (bounded), sets ATTACKER
  rm -f "$OUT/attack-$1.ready"
  python3 bench/hostile_clients.py attack 127.0.0.1 $NYM --stalled "$2" --halfopen "$3" --tunnels "$4" \
    --hold $HOLD --setup-timeout 60 --ready "$OUT/attack-$1.ready" --stats "$OUT/attack-$1.json" \
    2>"$OUT/attack-$1.log" & ATTACKER=$!
  pids+=($ATTACKER)
  for _ in $(seq 150); do [[ -s $OUT/attack-$1.ready ]] && break; sleep 0.5; done
  [[ -s $OUT/attack-$1.ready ]] || echo "warning: attacker $1 not ready after 75 s" >&2
}
attack_stop() { kill "$ATTACKER" 2>/dev/null || true; timeout 40 tail --pid="$ATTACKER" -f /dev/null || kill -9 "$ATTACKER" 2>/dev/null || true; }
held() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]][sys.argv[3]])" "$@"; }

# --- 1. Memory per held connection, one kind at a time, each on a fresh nymgate ---------------
alone() { # KIND STALLED HALFOPEN TUNNELS -> sets A_BEFORE A_WITH A_AFTER A_FDS A_HELD (KiB, count)
  start_nymgate "$1"
  sample_start "$1"
  sleep 1
  A_BEFORE=$(rss $NYM_PID)
  attack_start "$1" "$2" "$3" "$4"
  # A stalled reader's response fills what nymgate buffers for it within a second or two; a
  # half-open handshake must still be inside tls_handshake_timeout (10 s) when read.
  sleep 2
  A_WITH=$(rss $NYM_PID) A_FDS=$(fds $NYM_PID)
  cp "$OUT/attack-$1.json" "$OUT/attack-$1-at-reading.json"
  A_HELD=$(held "$OUT/attack-$1-at-reading.json" "$1" held)
  attack_stop
  sleep 3
  A_AFTER=$(rss $NYM_PID)
  sample_stop "$1" >/dev/null
  A_PER=$(((A_WITH - A_BEFORE) * 1024 / (A_HELD > 0 ? A_HELD : 1)))
  echo "$1 alone: RSS $A_BEFORE -> $A_WITH KiB with $A_HELD held ($A_PER B each); $A_AFTER KiB 3 s after" >&2
  ALONE[$1]="| $1 | $A_HELD | $((A_BEFORE / 1024)) MiB | $((A_WITH / 1024)) MiB ($A_FDS fds) | $((A_AFTER / 1024)) MiB | **$A_PER B** |"
}
declare -A ALONE=()
alone stalled "$STALLED" 0 0
stop_nymgate
alone tunnels 0 0 "$TUNNELS"
stop_nymgate
alone halfopen 0 "$HALFOPEN" 0
per_halfopen=$A_PER

# The ~64 KiB ClientHello: refused at once (closed within 2 s of its last byte) or held.
sample_start refuse
rss_before_big=$(rss $NYM_PID)
timeout 120 python3 bench/hostile_clients.py refuse 127.0.0.1 $NYM --n "$HALFOPEN" --declared "$BIG_HELLO" --wait 2 \
  --stats "$OUT/refuse-big.json" 2>"$OUT/refuse-big.log" || true
read -r big_rss_max _ _ _ _ _ < <(sample_stop refuse)
refused=$(python3 -c "import json; d=json.load(open('$OUT/refuse-big.json')); print(d['refused_at_once'], d['held'], d['failed'], d['refused_s_median'])")
read -r big_refused big_held big_failed big_median <<<"$refused"
echo "ClientHello declaring $BIG_HELLO bytes: $big_refused of $HALFOPEN refused at once (median ${big_median} s), $big_held held, $big_failed failed" >&2
metrics >"$OUT/metrics-halfopen.txt"
stop_nymgate

# --- 2. Ordinary load, without and with the attack -------------------------------------------
URL=https://127.0.0.1:$NYM/
peak() { # NAME -> "2xx/s all/s not_2xx"
  if [[ -n ${PERF:-} ]]; then
    # A system-wide profile of the measured window (after the warm-up), for BENCHMARKS.md's
    # explanations: `perf report -i perf-NAME.data --sort comm,dso,sym`. It costs throughput.
    (sleep 3; perf record -q -F 499 -a -o "$OUT/perf-$1.data" -- sleep $((DURATION - 2)) >/dev/null 2>&1) &
  fi
  timeout $((DURATION + 60)) h2load -c "$CONNS" -m 1 --h1 -D "$DURATION" --warm-up-time=2 "$URL" \
    >"$OUT/peak-$1.txt" 2>&1 || true
  python3 bench/load_stats.py ok_throughput "$OUT/peak-$1.txt"
}
at_rate() { # NAME RATE SEED -> "p50 p99 count bad"
  timeout $((DURATION + 60)) "$PACED" --connections "$CONNS" --rate "$2" --duration "${DURATION}s" --warm-up 2s \
    --seed "$3" --ca "$OUT/certs/dev-ca.pem" "$URL" >"$OUT/lat-$1.json" 2>"$OUT/lat-$1.err" || true
  python3 bench/load_stats.py latency "$OUT/lat-$1.json"
}
# CPU seconds (user + system) a process has used so far.
TICKS=$(getconf CLK_TCK)
cpu() { awk -v t="$TICKS" '{ printf "%.1f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
since() { python3 -c "print(f'{$2 - $1:.1f}')"; }
declare -a RATE=()
declare -A OK=() ALL=() BAD=() P99=() LBAD=() RSSMAX=() RSSEND=() FDMAX=() FDEND=() PLAT=() TCP=() CPUN=() CPUA=() WALL=()
declare -a RSSAFTER=()
add() { eval "$1[$2]=\"\${$1[$2]:-} $3\""; }
for rep in $(seq "$REPEAT"); do
  # A fresh nymgate each run: memory an earlier attack left behind would count as the baseline's.
  start_nymgate "load-$rep"
  sample_start "baseline-$rep"
  c0=$(cpu $NYM_PID) t0=$(date +%s.%N)
  read -r ok all bad < <(peak "baseline-$rep")
  ok=${ok:-0} all=${all:-0} bad=${bad:-nan}
  half=$((ok / 2 > 0 ? ok / 2 : 1))
  read -r _ p99 _ lbad < <(at_rate "baseline-$rep" "$half" "$rep")
  c1=$(cpu $NYM_PID) t1=$(date +%s.%N)
  p99=${p99:-nan} lbad=${lbad:-nan}
  read -r rmax rend fmax fend pmax tmax < <(sample_stop "baseline-$rep")
  metrics >"$OUT/metrics-baseline-$rep.txt"
  echo "baseline $rep: $ok 2xx/s ($bad not 2xx); p99 $p99 ms at $half req/s; RSS max $rmax KiB, fds max $fmax, platform max $pmax" >&2
  for k in OK:$ok ALL:$all BAD:$bad P99:$p99 LBAD:$lbad RSSMAX:$rmax RSSEND:$rend FDMAX:$fmax FDEND:$fend PLAT:$pmax TCP:${tmax:-nan} \
    CPUN:$(since "$c0" "$c1") CPUA:0 WALL:$(since "$t0" "$t1"); do add "${k%%:*}" baseline "${k#*:}"; done
  RATE[$rep]=$half

  attack_start "load-$rep" "$STALLED" "$HALFOPEN" "$TUNNELS"
  cp "$OUT/attack-load-$rep.ready" "$OUT/attack-load-$rep-at-ready.json" 2>/dev/null || true
  sleep 2
  sample_start "attack-$rep"
  c0=$(cpu $NYM_PID) a0=$(cpu $ATTACKER) t0=$(date +%s.%N)
  read -r ok all bad < <(peak "attack-$rep")
  read -r _ p99 _ lbad < <(at_rate "attack-$rep" "$half" "$rep")
  c1=$(cpu $NYM_PID) a1=$(cpu $ATTACKER) t1=$(date +%s.%N)
  ok=${ok:-0} all=${all:-0} bad=${bad:-nan} p99=${p99:-nan} lbad=${lbad:-nan}
  read -r rmax rend fmax fend pmax tmax < <(sample_stop "attack-$rep")
  metrics >"$OUT/metrics-attack-$rep.txt"
  attack_stop
  echo "attack $rep: $ok 2xx/s ($bad not 2xx); p99 $p99 ms at $half req/s; RSS max $rmax KiB, fds max $fmax, platform max $pmax" >&2
  for k in OK:$ok ALL:$all BAD:$bad P99:$p99 LBAD:$lbad RSSMAX:$rmax RSSEND:$rend FDMAX:$fmax FDEND:$fend PLAT:$pmax TCP:${tmax:-nan} \
    CPUN:$(since "$c0" "$c1") CPUA:$(since "$a0" "$a1") WALL:$(since "$t0" "$t1"); do add "${k%%:*}" attack "${k#*:}"; done
  # What the attack held drains (bounded), then what nymgate's memory came back to.
  for _ in $(seq 60); do (($(fds $NYM_PID) < 200)) && break; sleep 1; done
  sleep 2
  RSSAFTER[$rep]="$(($(rss $NYM_PID) / 1024)) MiB ($(fds $NYM_PID) fds open)"
  stop_nymgate
done

# --- Summary ----------------------------------------------------------------------------------
med() { python3 bench/load_stats.py median "$@"; }
medi() { python3 -c "import statistics,sys; print(round(statistics.median(float(x) for x in sys.argv[1:])))" "$@"; }
kib_mib() { python3 -c "print(f'{$1 / 1024:.0f}')"; }
{
  echo "# Hostile load, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; $(uname -sr). nymgate $(git rev-parse --short HEAD)"
  echo "(binary: ${NYMGATE_BIN}), $WORKERS workers, limits defaults but idle_timeout = 120s (lib.sh) so"
  echo "the tunnels stay for the run; tls_handshake_timeout = 10s (the default). Platform connection"
  echo "bound: $BOUND_NOTE. Upstream: nginx $(nginx -v 2>&1 | cut -d/ -f2), one worker."
  echo "Ordinary load: $(h2load --version | head -1) closed loop, HTTP/1.1 keep-alive, $CONNS connections,"
  echo "${DURATION} s after 2 s warm-up; then paced_load (Poisson arrivals) at half of that run's baseline"
  echo "peak, 2 s warm-up left out. Medians of $REPEAT run(s)."
  echo "Attack (bench/hostile_clients.py): $STALLED stalled readers (GET /big, 64 MiB, never read; receive"
  echo "buffer 4 KiB), $HALFOPEN half-open handshakes (ClientHello declaring 15,000 bytes, 14,900 sent),"
  echo "$TUNNELS idle WebSocket tunnels; whatever nymgate cuts is opened again."
  echo
  echo "\`nymgate check\` on this config: $(grep -m1 'worst case' "$OUT/check.txt" | sed 's/^ *//' || echo '(no worst-case line)')."
  echo
  echo "| ordinary clients and nymgate | without attack | under attack |"
  echo "| --- | ---: | ---: |"
  echo "| throughput, 2xx req/s (runs) | $(medi ${OK[baseline]}) (${OK[baseline]# }) | $(medi ${OK[attack]}) (${OK[attack]# }) |"
  echo "| responses not 2xx in the throughput run | ${BAD[baseline]# } | ${BAD[attack]# } |"
  echo "| p99 ms at ${RATE[*]} req/s (runs) | $(med ${P99[baseline]}) (${P99[baseline]# }) | $(med ${P99[attack]}) (${P99[attack]# }) |"
  echo "| paced requests failed or not 2xx | ${LBAD[baseline]# } | ${LBAD[attack]# } |"
  echo "| nymgate RSS, max / at the end (MiB) | $(kib_mib "$(med ${RSSMAX[baseline]})") / $(kib_mib "$(med ${RSSEND[baseline]})") | $(kib_mib "$(med ${RSSMAX[attack]})") / $(kib_mib "$(med ${RSSEND[attack]})") |"
  echo "| nymgate open fds, max / at the end | ${FDMAX[baseline]# } / ${FDEND[baseline]# } | ${FDMAX[attack]# } / ${FDEND[attack]# } |"
  echo "| platform connections, max sampled (bound ${BOUND:-none}) | ${PLAT[baseline]# } | ${PLAT[attack]# } |"
  echo "| the host's TCP memory, max sampled, pages (pressure at $(awk '{print $2}' /proc/sys/net/ipv4/tcp_mem)) | ${TCP[baseline]# } | ${TCP[attack]# } |"
  echo "| CPU s used by nymgate / the attacker, per run (wall s) | ${CPUN[baseline]# } / - (${WALL[baseline]# }) | ${CPUN[attack]# } / ${CPUA[attack]# } (${WALL[attack]# }) |"
  echo
  ratio=$(python3 -c "print(f'{$(medi ${OK[attack]}) / max(1, $(medi ${OK[baseline]})):.2f}')")
  echo "Ordinary throughput kept under attack: **$ratio** (target at least 0.80). The attacker runs on"
  echo "the same $(nproc) cores (its CPU time is in the table). nymgate's resident memory once the attack"
  echo "had ended and its connections were gone, per run: $(IFS=';'; echo "${RSSAFTER[*]}" | sed 's/;/; /g')."
  echo
  echo "The attacker, per run (held when the load began; cuts are closes by nymgate that the client"
  echo "saw, each followed by a re-open; hold time is from open to cut). A stalled reader never sees"
  echo "nymgate's cut (limits.send_timeout, 60 s by default: longer than an attack run here): its FIN"
  echo "waits behind the data the client does not read, so it shows in nymgate's fds and platform"
  echo "connections, not here:"
  echo
  echo "| run | kind | held at start | opened | re-opened | cuts | failed opens | median / max hold s |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
  for rep in $(seq "$REPEAT"); do
    python3 - "$OUT/attack-load-$rep-at-ready.json" "$OUT/attack-load-$rep.json" "$rep" <<'PY'
import json, sys
try:
    start = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    start = {}
end = json.load(open(sys.argv[2]))
for kind in ("stalled", "halfopen", "tunnels"):
    e, s = end[kind], start.get(kind, {})
    print(f"| {sys.argv[3]} | {kind} | {s.get('held', '?')}/{e['target']} | {e['opened']} | {e['reopened']} | {e['cuts']} "
          f"| {e['failed']} | {e['held_s_median']} / {e['held_s_max']} |")
PY
  done
  echo
  echo "Deadline cuts and refusals nymgate counted in the last attack run (its /metrics):"
  echo
  echo '```'
  grep -E 'deadline|rejected|open_connections|parked|shed|handshake|status="(101|5..)"' "$OUT/metrics-attack-$REPEAT.txt" || true
  echo '```'
  echo
  echo "## Memory per held connection, one kind at a time (a fresh nymgate each; read 2 s after all were open)"
  echo
  echo "| kind | held | RSS before | with them held | 3 s after they closed | per connection |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  echo "${ALONE[stalled]}"
  echo "${ALONE[tunnels]}"
  echo "${ALONE[halfopen]}"
  echo
  echo "RSS per half-open handshake: $per_halfopen B (target under 16,384: $( ((per_halfopen < 16384)) && echo met || echo NOT met))."
  echo
  echo "ClientHello declaring $BIG_HELLO bytes ($((BIG_HELLO + 4 + 5 * ((BIG_HELLO + 4 + 16383) / 16384) - 100)) bytes sent in 16 KiB records, all but the last 100), $HALFOPEN connections:"
  echo "$big_refused refused at once (closed within 2 s of the last byte, median ${big_median} s), $big_held held,"
  echo "$big_failed failed to connect; RSS $((rss_before_big / 1024)) MiB before, at most $((big_rss_max / 1024)) MiB during."
  echo
  if [[ -n $BOUND ]]; then
    max_plat=$(printf '%s\n' ${PLAT[baseline]} ${PLAT[attack]} | sort -n | tail -1)
    verdict=$([[ $max_plat -le $BOUND ]] && echo "never above" || echo "ABOVE")
    echo "Platform connections: at most $max_plat sampled, $verdict the bound of $BOUND."
  else
    echo "Platform connections: no bound configured (this binary has no upstream.max_connections)."
  fi
} >"$OUT/results.md"

cat "$OUT/results.md"
echo "(raw output in $OUT)" >&2
