#!/usr/bin/env bash
# nymgate's resident memory under a wave of half-open TLS handshakes (issue 27): before, while N
# connections each hold part of a ClientHello, and after they are gone. Two waves: most of a
# 64 KB ClientHello (the review's attacker; refused at once since the 16 KiB bound), and the
# largest ClientHello the bound allows, 16 KiB, with 16,000 bytes of it sent; then a whole real
# ClientHello that nymgate answers, and no Finished.
#
# usage: bash bench/half_open.sh [BINARY] [N]   (default target/release/nymgate, 2000)
set -euo pipefail
BIN=${1:-target/release/nymgate}
N=${2:-2000}
OUT=$(mktemp -d /tmp/nymgate-half-open.XXXXXX)
PORT=$((20000 + RANDOM % 20000)); ADMIN=$((PORT + 1))
"$BIN" certs dev --out "$OUT/certs" >/dev/null
cat >"$OUT/nymgate.toml" <<CONF
[server]
listen = "127.0.0.1:$PORT"
admin_listen = "127.0.0.1:$ADMIN"
cert_file = "$OUT/certs/localhost.pem"
key_file = "$OUT/certs/localhost-key.pem"
[upstream]
url = "http://127.0.0.1:9"
[limits]
tls_handshake_timeout = "60s"
[log]
level = "warn"
CONF
pid=
trap '[[ -n $pid ]] && kill $pid 2>/dev/null || true' EXIT
rss() { awk '/VmRSS/{print $2}' "/proc/$pid/status"; }
failures() { curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '/^nymgate_tls_handshake_failures_total /{print $2}'; }
echo "| wave | RSS before (KiB) | with $N half-open (KiB) | per handshake (B) | after (KiB) | closed at once | failures counted |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for wave in "64000 60000" "16384 16000" "0 0"; do
  read -r declared sent <<<"$wave"
  # A fresh nymgate for each wave: one wave's freed heap would hide the next wave's cost.
  "$BIN" serve --config "$OUT/nymgate.toml" 2>"$OUT/nymgate.log" & pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  sleep 1
  before=$(rss)
  rm -f "$OUT/ready"
  python3 "$(dirname "$0")/half_open.py" 127.0.0.1 "$PORT" "$N" "$declared" "$sent" 10 "$OUT/ready" 2>"$OUT/wave.txt" & holder=$!
  for _ in $(seq 600); do [[ -s $OUT/ready ]] && break; sleep 0.2; done
  with=$(rss)
  closed=$(sed -n 's/.*closed by nymgate: //p' "$OUT/wave.txt")
  wait $holder
  sleep 3
  after=$(rss)
  label="ClientHello of $declared B, $sent B sent"; [[ $declared == 0 ]] && label="whole real ClientHello, no Finished"
  fails=$(failures)
  kill $pid; wait $pid 2>/dev/null || true
  echo "| $label | $before | $with | $(( (with - before) * 1024 / N )) | $after | $closed | $fails |"
done
