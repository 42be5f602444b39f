#!/usr/bin/env bash
# nymgate's own login capacity (BENCHMARKS.md §5): `nymgate loadtest` with its built-in IdP
# against a release nymgate with the built-in echo platform, everything on 127.0.0.1 of this
# machine (the load generator and the IdP share the cores with nymgate: the figures are a floor).
#
#   bash bench/logins.sh                 # OIDC and SAML, closed loop, then open loop at RATE
#
# Environment: DURATION (default 20s), WARMUP (3s), CONCURRENCY (64), HTTP (1.1 or 2),
# REQUESTS (ordinary requests per login, default 0: logins only), RATE (open-loop logins/s,
# default 500), TENANTS ("loadtest-oidc loadtest-saml"), MODES ("closed open"), NYMGATE
# (binary, default target/release/nymgate, built when missing). nymgate's resident memory is
# sampled every 30 s during each run into NAME-memory.tsv (a soak: DURATION=10m MODES=open).
# UNSIGNED=1 gives the SAML tenant `sign_authn_requests = false` (no RSA signature per start).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-3s}
CONCURRENCY=${CONCURRENCY:-64}
HTTP=${HTTP:-1.1}
REQUESTS=${REQUESTS:-0}
RATE=${RATE:-500}
TENANTS=${TENANTS:-loadtest-oidc loadtest-saml}
MODES=${MODES:-closed open}
OUT=bench/out/logins-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [[ -z ${NYMGATE:-} ]]; then
  cargo build --release --locked -q
  NYMGATE=$PWD/target/release/nymgate
fi
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PUBLIC=$(port); ADMIN=$(port); IDP=$(port)
URL=https://localhost:$PUBLIC

cd "$OUT"
"$NYMGATE" certs dev --out certs >/dev/null
"$NYMGATE" certs saml --out . --entity-id "$URL/nymgate/saml" >/dev/null
"$NYMGATE" keys signing --out signing.pem >/dev/null
for scope in loadtest-oidc loadtest-saml; do
  "$NYMGATE" keys new --keyring keyring.toml --scope "$scope" --audit keys-audit.log >/dev/null
done
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > seal.secret
chmod 600 seal.secret
cat > nymgate.toml <<EOF
[server]
listen = "127.0.0.1:$PUBLIC"
admin_listen = "127.0.0.1:$ADMIN"
cert_file = "certs/localhost.pem"
key_file = "certs/localhost-key.pem"
[log]
format = "json"
level = "warn"
[audit]
file = "audit.log"
[pseudonyms]
keyring_file = "keyring.toml"
[login]
public_url = "$URL"
seal_secret = { file = "seal.secret" }
output = "assertion_header"
[login.signing]
key_file = "signing.pem"
[login.saml]
cert_file = "saml-sp.pem"
key_file = "saml-sp-key.pem"
[login.blocking]
enabled = false
EOF
LT=("$NYMGATE" loadtest --url "$URL" --idp-listen "127.0.0.1:$IDP" --idp-dir idp --ca-file certs/dev-ca.pem
  --keyring keyring.toml --admin "http://127.0.0.1:$ADMIN" --http "$HTTP" --requests "$REQUESTS"
  --concurrency "$CONCURRENCY" --warmup "$WARMUP")
"${LT[@]}" --print-config >> nymgate.toml
[[ ${UNSIGNED:-} == 1 ]] && sed -i 's/^name_id_format = /sign_authn_requests = false\nname_id_format = /' nymgate.toml
"$NYMGATE" check --config nymgate.toml >/dev/null

"$NYMGATE" serve --config nymgate.toml 2> nymgate.log &
NYMGATE_PID=$!
trap 'kill $NYMGATE_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$ADMIN/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

# nymgate's own CPU time (user + system, from /proc): with the load generator and the IdP on
# the same cores, logins per nymgate CPU-second is the figure that carries to a dedicated host.
TICKS=$(getconf CLK_TCK)
cpu() { awk -v t="$TICKS" '{printf "%.2f", ($14 + $15) / t}' "/proc/$NYMGATE_PID/stat"; }
measure() { # NAME ARGS...: one load test run, its report in NAME.json, then nymgate's CPU use
  local name=$1 before after sampler
  shift
  before=$(cpu)
  (
    start=$(date +%s)
    while sleep 30; do
      rss=$(curl -fsS "http://127.0.0.1:$ADMIN/metrics" | awk '/^nymgate_resident_memory_bytes /{print $2}')
      echo "$(($(date +%s) - start))	$rss"
    done
  ) > "$name-memory.tsv" &
  sampler=$!
  echo
  # Exit status 2 means some logins failed: the report says which, so go on.
  "${LT[@]}" "$@" --json > "$name.json" || (($? == 2))
  kill "$sampler" 2>/dev/null || true
  after=$(cpu)
  python3 - "$name.json" "$before" "$after" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
cpu = float(sys.argv[3]) - float(sys.argv[2])
print(f"  nymgate CPU: {cpu:.2f} s for {report['logins']} logins (warm-up included: "
      f"{report['logins'] / max(cpu, 0.01):.0f} logins per nymgate CPU-second, a floor)")
PY
}

echo "nymgate $(git -C "$OLDPWD" rev-parse --short HEAD), $(nproc) cores, $(date -u +%FT%TZ), HTTP/$HTTP"
for tenant in $TENANTS; do
  for mode in $MODES; do
    if [[ $mode == open ]]; then
      measure "$tenant-open" --tenant "$tenant" --duration "$DURATION" --rate "$RATE"
    else
      measure "$tenant-closed" --tenant "$tenant" --duration "$DURATION"
    fi
  done
done
echo
echo "raw reports and nymgate's log: $OUT"
