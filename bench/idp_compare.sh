#!/usr/bin/env bash
# Logins through a real school IdP (issue 8, benchmark 2): the same login driver
# (tests/peers/idp_bench.mjs: virtual browsers with their own cookie jars, each login complete and
# verified by the relying party) against
#   OIDC: node oidc-provider 9.13.3 directly | through SATOSA 8.6.0 (OIDC→OIDC) | through nymgate
#   SAML: SimpleSAMLphp 1.19 directly        | through SATOSA 8.6.0 (SAML→SAML) | through nymgate
# at the same concurrency, everything on 127.0.0.1 of this machine (driver, IdPs and proxies share
# the cores). The relying party's own work is on those cores too, and it differs by path: for
# nymgate the driver checks an EdDSA ID token, directly and through SATOSA it checks RS256 (OIDC)
# or two RSA XML signatures with xml-crypto (SAML). Prints a markdown table: logins/s, p50 and p99 of complete logins, and the ratios
# nymgate/direct and nymgate/SATOSA.
#
#   bash bench/idp_compare.sh
#
# Environment: DURATION (seconds measured per path, default 20), WARMUP (seconds, default 3),
# CONCURRENCY (virtual browsers, default 4), PROTOCOLS ("oidc saml"), PATHS ("direct satosa
# nymgate"), SATOSA_THREADS (gunicorn threads of SATOSA's one worker, default 8), SSP_WORKERS
# (php -S workers, default 4), SATOSA_LOG_LEVEL (default WARNING), NYMGATE (binary, default target/release/nymgate; this script never
# builds it: `cargo build --release --locked` first), KEEP=1 keeps the servers up until Ctrl-C.
# DURATION=0 only checks that one login per path completes and verifies.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
CONCURRENCY=${CONCURRENCY:-4}
PROTOCOLS=${PROTOCOLS:-oidc saml}
PATHS=${PATHS:-direct satosa nymgate}
SATOSA_THREADS=${SATOSA_THREADS:-8}
SSP_WORKERS=${SSP_WORKERS:-4}
NYMGATE=${NYMGATE:-$ROOT/target/release/nymgate}
USERS=50
PASSWORD=bench-pass
PLATFORM_REDIRECT=https://platform.bench.invalid/callback
SP_ENTITY=https://platform.bench.invalid/saml
SP_ACS=https://platform.bench.invalid/saml/acs

want_path() { [[ " $PATHS " == *" $1 "* ]]; }
say() { echo "[idp_compare] $*" >&2; }

# ---- what it needs ------------------------------------------------------------------------
if [[ $(id -u) == 0 ]]; then
  missing=()
  for pkg in simplesamlphp php-cli php-cgi php-xml php-mbstring php-curl php-intl xmlsec1 openssl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    say "installing from Debian: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
for tool in php xmlsec1 openssl node python3 curl; do
  command -v "$tool" >/dev/null || { say "missing $tool (run as root to install Debian packages)"; exit 1; }
done
[[ -d /usr/share/simplesamlphp/www ]] || { say "SimpleSAMLphp is not installed (Debian simplesamlphp)"; exit 1; }
[[ -d tests/peers/node_modules/oidc-provider ]] || npm ci --prefix tests/peers --silent
if want_path nymgate; then
  [[ -x $NYMGATE ]] || { say "no nymgate binary at $NYMGATE: cargo build --release --locked first"; exit 1; }
fi

VENV=$ROOT/bench/out/venv-satosa
if want_path satosa; then
  stamp=$(sha256sum bench/requirements-satosa.txt | cut -d' ' -f1)
  if [[ ! -x $VENV/bin/gunicorn || $(cat "$VENV/.requirements" 2>/dev/null) != "$stamp" ]]; then
    say "installing SATOSA into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r bench/requirements-satosa.txt
    echo "$stamp" > "$VENV/.requirements"
  fi
fi

# ---- the run's folder, ports, keys --------------------------------------------------------
RUN=$ROOT/bench/out/idp-compare-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"/{keys,satosa,ssp/cert,ssp/log,ssp/data,ssp/tmp,driver}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
IDP_PORT=$(port); SSP_PORT=$(port); SAT_OIDC_PORT=$(port); SAT_SAML_PORT=$(port); NYM_PORT=$(port); NYM_ADMIN=$(port)
OIDC_IDP_ISSUER=https://localhost:$IDP_PORT
SSP_BASE=http://127.0.0.1:$SSP_PORT
SSP_ENTITY=$SSP_BASE/saml2/idp/metadata.php
SATOSA_OIDC_BASE=https://localhost:$SAT_OIDC_PORT
SATOSA_SAML_BASE=https://localhost:$SAT_SAML_PORT
NYM_URL=https://localhost:$NYM_PORT
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
PLATFORM_SECRET=$(secret)
NYM_IDP_CLIENT_SECRET=$(secret)
SATOSA_IDP_CLIENT_SECRET=$(secret)
DIRECT_IDP_CLIENT_SECRET=$PLATFORM_SECRET
STATE_KEY=$(secret)
cd "$RUN"

# TLS: one development CA and one localhost certificate (ECDSA P-256) for every https server.
K=keys
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=idp_compare dev CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout $K/dev-ca-key.pem -out $K/dev-ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout $K/localhost-key.pem -out $K/localhost.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' > $K/localhost.ext
openssl x509 -req -in $K/localhost.csr -CA $K/dev-ca.pem -CAkey $K/dev-ca-key.pem -CAcreateserial -days 2 \
  -extfile $K/localhost.ext -out $K/localhost.pem 2>/dev/null
# SAML signing keys (RSA 2048, self-signed as SAML pins them): SimpleSAMLphp's, the driver SP's,
# SATOSA's two faces, nymgate's SP; and the RSA key SATOSA's OIDC frontend signs ID tokens with.
saml_cert() { openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$1" -keyout "$2-key.pem" -out "$2.pem" 2>/dev/null; }
saml_cert school-idp $K/ssp-idp; cp $K/ssp-idp.pem ssp/cert/idp.crt; cp $K/ssp-idp-key.pem ssp/cert/idp.key
saml_cert bench-sp $K/driver-sp
saml_cert satosa-frontend $K/satosa-frontend
saml_cert satosa-backend $K/satosa-backend
saml_cert nymgate-sp $K/nymgate-sp
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $K/satosa-oidc-signing-key.pem 2>/dev/null
chmod 600 $K/*-key.pem
b64cert() { grep -v -- ----- "$1" | tr -d '\n'; }
export NODE_EXTRA_CA_CERTS=$RUN/$K/dev-ca.pem

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    pkill -TERM -P "$pid" 2>/dev/null || true   # php -S workers, gunicorn workers
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
wait_port() {  # host port name
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.05
  done
  say "$3 did not come up on $1:$2; its log is in $RUN"; exit 1
}

# ---- the users both IdPs know -------------------------------------------------------------
python3 - "$USERS" "$PASSWORD" <<'EOF'
import json, sys
n, password = int(sys.argv[1]), sys.argv[2]
users = [f"pupil-{i:03d}" for i in range(1, n + 1)]
oidc = {u: {"email": f"{u}@school.example", "email_verified": True, "name": f"Pupil {u[6:]}",
            "given_name": "Pupil", "family_name": u[6:], "roles": ["Student"], "school_code": "SCH-01"}
        for u in users}
saml = {f"{u}:{password}": {"uid": [u], "mail": [f"{u}@school.example"], "displayName": [f"Pupil {u[6:]}"],
                            "givenName": ["Pupil"], "sn": [u[6:]], "eduPersonAffiliation": ["student"]}
        for u in users}
json.dump(users, open("users.json", "w"))
json.dump(oidc, open("oidc-users.json", "w"))
json.dump(saml, open("ssp/users.json", "w"))
EOF

# ---- the OIDC school IdP: oidc-provider (tests/peers/oidc_idp.mjs) ------------------------
if [[ " $PROTOCOLS " == *" oidc "* ]]; then
  python3 - <<EOF
import json
json.dump({
  "port": $IDP_PORT, "host": "127.0.0.1",
  "cert": "$RUN/$K/localhost.pem", "key": "$RUN/$K/localhost-key.pem",
  "clients": [
    {"client_id": "bench-rp", "client_secret": "$DIRECT_IDP_CLIENT_SECRET", "redirect_uris": ["$PLATFORM_REDIRECT"]},
    {"client_id": "satosa", "client_secret": "$SATOSA_IDP_CLIENT_SECRET", "redirect_uris": ["$SATOSA_OIDC_BASE/oidc_school/callback"]},
    {"client_id": "nymgate", "client_secret": "$NYM_IDP_CLIENT_SECRET", "redirect_uris": ["$NYM_URL/nymgate/callback"]},
  ],
  "pkce_optional_clients": ["satosa"],
  "conform_id_token_claims": False,
  "claims": {"openid": ["sub", "roles", "school_code"], "email": ["email", "email_verified"],
             "profile": ["name", "given_name", "family_name"]},
  "users": json.load(open("oidc-users.json")),
}, open("oidc-idp.json", "w"))
EOF
  node "$ROOT/tests/peers/oidc_idp.mjs" oidc-idp.json > oidc-idp.out 2> oidc-idp.log &
  PIDS+=($!)
  wait_port 127.0.0.1 "$IDP_PORT" oidc-provider
fi

# ---- the SAML school IdP: SimpleSAMLphp on PHP's built-in server --------------------------
if [[ " $PROTOCOLS " == *" saml "* ]]; then
  python3 - <<EOF
import json
json.dump([
  {"entity_id": "$SP_ENTITY", "acs_url": "$SP_ACS", "cert_b64": "$(b64cert $K/driver-sp.pem)"},
  {"entity_id": "$SATOSA_SAML_BASE/Saml2/proxy_saml2_backend.xml", "acs_url": "$SATOSA_SAML_BASE/Saml2/acs/post",
   "cert_b64": "$(b64cert $K/satosa-backend.pem)"},
  {"entity_id": "$NYM_URL/nymgate/saml", "acs_url": "$NYM_URL/nymgate/saml/acs", "cert_b64": "$(b64cert $K/nymgate-sp.pem)"},
], open("ssp/sps.json", "w"))
EOF
  SIMPLESAMLPHP_CONFIG_DIR=$ROOT/bench/simplesamlphp NYMGATE_SSP_DIR=$RUN/ssp NYMGATE_SSP_BASEURL=$SSP_BASE \
    NYMGATE_SSP_SALT=$(secret) PHP_CLI_SERVER_WORKERS=$SSP_WORKERS \
    php -S "127.0.0.1:$SSP_PORT" -t /usr/share/simplesamlphp/www > /dev/null 2> ssp/log/php-server.log &
  PIDS+=($!)
  wait_port 127.0.0.1 "$SSP_PORT" SimpleSAMLphp
  curl -fsS "$SSP_ENTITY" -o ssp-idp-metadata.xml
fi

# ---- SATOSA: SAML→SAML and OIDC→OIDC, each one gunicorn worker ----------------------------
# One worker: SATOSA's SAML backend keeps the outstanding AuthnRequest IDs, and pyop its codes,
# in the worker's memory, so a second worker breaks InResponseTo and code redemption
# (shared/PEERS.md). Threads give it concurrency within the worker.
start_satosa() {  # name port proxy_conf
  SATOSA_CONFIG=$RUN/satosa/$3 REQUESTS_CA_BUNDLE=$RUN/$K/dev-ca.pem \
    "$VENV/bin/gunicorn" --bind "127.0.0.1:$2" --certfile "$RUN/$K/localhost.pem" --keyfile "$RUN/$K/localhost-key.pem" \
    --workers 1 --worker-class gthread --threads "$SATOSA_THREADS" --log-level warning --no-control-socket \
    --chdir "$RUN/satosa" satosa.wsgi:app > "satosa-$1.out" 2> "satosa-$1.log" &
  PIDS+=($!)
  wait_port 127.0.0.1 "$2" "SATOSA ($1)"
}
if want_path satosa; then
  cat > driver-sp-metadata.xml <<EOF
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="$SP_ENTITY"><md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>$(b64cert $K/driver-sp.pem)</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="$SP_ACS" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>
EOF
  SATOSA_LOG_LEVEL=${SATOSA_LOG_LEVEL:-WARNING}
  export RUN STATE_KEY SATOSA_LOG_LEVEL SATOSA_OIDC_BASE SATOSA_SAML_BASE OIDC_IDP_ISSUER SATOSA_IDP_CLIENT_SECRET PLATFORM_SECRET PLATFORM_REDIRECT
  for f in "$ROOT"/bench/satosa/*.yaml "$ROOT"/bench/satosa/*.json; do
    python3 -c 'import os, string, sys; print(string.Template(open(sys.argv[1]).read()).substitute(os.environ), end="")' "$f" \
      > "satosa/$(basename "$f")"
  done
  [[ " $PROTOCOLS " == *" oidc "* ]] && start_satosa oidc "$SAT_OIDC_PORT" proxy_conf_oidc.yaml
  [[ " $PROTOCOLS " == *" saml "* ]] && start_satosa saml "$SAT_SAML_PORT" proxy_conf_saml.yaml
fi

# ---- nymgate: provider output, one OIDC and one SAML school -------------------------------
if want_path nymgate; then
  secret > seal.secret; chmod 600 seal.secret
  printf '%s' "$PLATFORM_SECRET" > platform.secret; printf '%s' "$NYM_IDP_CLIENT_SECRET" > school-o.secret
  chmod 600 platform.secret school-o.secret
  "$NYMGATE" keys signing --out signing.pem >/dev/null
  for scope in school-o school-s; do
    "$NYMGATE" keys new --keyring keyring.toml --scope "$scope" --audit keys-audit.log >/dev/null
  done
  cat > nymgate.toml <<EOF
[server]
listen = "127.0.0.1:$NYM_PORT"
admin_listen = "127.0.0.1:$NYM_ADMIN"
cert_file = "$K/localhost.pem"
key_file = "$K/localhost-key.pem"

[log]
format = "json"
level = "warn"

[audit]
file = "audit.log"

[pseudonyms]
keyring_file = "keyring.toml"

[login]
public_url = "$NYM_URL"
seal_secret = { file = "seal.secret" }
output = "provider"

[login.signing]
key_file = "signing.pem"

[login.saml]
cert_file = "$K/nymgate-sp.pem"
key_file = "$K/nymgate-sp-key.pem"

[login.blocking]
enabled = false

[[login.clients]]
client_id = "bench-rp"
client_secret = { file = "platform.secret" }
redirect_uris = ["$PLATFORM_REDIRECT"]

[[tenants]]
id = "school-o"
name = "OIDC school"
idp = "oidc"
issuer = "$OIDC_IDP_ISSUER"
[tenants.oidc]
client_id = "nymgate"
client_secret = { file = "school-o.secret" }
scopes = ["openid", "email", "profile"]
ca_file = "$K/dev-ca.pem"
[tenants.policy]
role_from = ["roles"]
role_map = { "Student" = "student", "Teacher" = "teacher" }

[[tenants]]
id = "school-s"
name = "SAML school"
idp = "saml"
issuer = "$SSP_ENTITY"
[tenants.saml]
sso_url = "$SSP_BASE/saml2/idp/SSOService.php"
certificate_files = ["$K/ssp-idp.pem"]
name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
[tenants.policy]
role_from = ["urn:oid:1.3.6.1.4.1.5923.1.1.1.1"]
role_map = { "student" = "student", "faculty" = "teacher" }
EOF
  "$NYMGATE" check --config nymgate.toml >/dev/null
  "$NYMGATE" serve --config nymgate.toml > nymgate.log 2> nymgate.stderr &
  PIDS+=($!)
  wait_port 127.0.0.1 "$NYM_ADMIN" nymgate
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$NYM_ADMIN/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
fi

# ---- the driver, per protocol and path ----------------------------------------------------
driver_config() {  # protocol path → JSON on stdout
  python3 - "$1" "$2" <<EOF
import json, sys
protocol, path = sys.argv[1], sys.argv[2]
c = {"mode": "oidc", "label": f"{protocol}/{path}", "users": json.load(open("users.json")),
     "password": "$PASSWORD", "concurrency": $CONCURRENCY, "duration_s": $DURATION, "warmup_s": $WARMUP}
rp = {"client_id": "bench-rp", "client_secret": "$PLATFORM_SECRET", "redirect_uri": "$PLATFORM_REDIRECT"}
saml = {"sp_entity_id": "$SP_ENTITY", "acs_url": "$SP_ACS", "sp_key": "$RUN/$K/driver-sp-key.pem", "sp_cert": "$RUN/$K/driver-sp.pem"}
if path == "nymgate":
    # nymgate's provider output: the driver is the platform, for either school protocol.
    c["oidc"] = {**rp, "issuer": "$NYM_URL/nymgate", "alg": "EdDSA", "scope": "openid",
                 "extra_auth_params": {"tenant": "school-o" if protocol == "oidc" else "school-s"}}
elif protocol == "oidc" and path == "direct":
    c["oidc"] = {**rp, "issuer": "$OIDC_IDP_ISSUER", "alg": "RS256", "scope": "openid email profile"}
elif protocol == "oidc" and path == "satosa":
    c["oidc"] = {**rp, "issuer": "$SATOSA_OIDC_BASE", "alg": "RS256", "scope": "openid"}
elif protocol == "saml" and path == "direct":
    c["mode"] = "saml"
    c["saml"] = {**saml, "idp_entity_id": "$SSP_ENTITY", "idp_sso_url": "$SSP_BASE/saml2/idp/SSOService.php",
                 "idp_cert": "$RUN/$K/ssp-idp.pem"}
elif protocol == "saml" and path == "satosa":
    c["mode"] = "saml"
    c["saml"] = {**saml, "idp_entity_id": "$SATOSA_SAML_BASE/Saml2IDP/proxy.xml",
                 "idp_sso_url": "$SATOSA_SAML_BASE/Saml2/sso/redirect", "idp_cert": "$RUN/$K/satosa-frontend.pem"}
print(json.dumps(c))
EOF
}
DRIVER=$ROOT/tests/peers/idp_bench.mjs
: > results.jsonl
status=0
for protocol in $PROTOCOLS; do
  for path in $PATHS; do
    driver_config "$protocol" "$path" > "driver/$protocol-$path.json"
    # One login first, so a broken path fails with its reason instead of a table of errors.
    python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["once"]=True; json.dump(c, open(sys.argv[2],"w"))' \
      "driver/$protocol-$path.json" "driver/$protocol-$path-once.json"
    if ! (cd "$ROOT/tests/peers" && node "$DRIVER" "$RUN/driver/$protocol-$path-once.json") > "driver/$protocol-$path-once.out" 2>&1; then
      say "$protocol/$path: the first login failed: $(cat "driver/$protocol-$path-once.out")"
      echo "{\"label\": \"$protocol/$path\", \"failed\": true}" >> results.jsonl
      status=1
      continue
    fi
    say "$protocol/$path: verified login ok ($(python3 -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["ms"]), "ms")' "driver/$protocol-$path-once.out"))"
    if [[ $DURATION == 0 ]]; then echo "{\"label\": \"$protocol/$path\", \"once\": true}" >> results.jsonl; continue; fi
    say "$protocol/$path: measuring ${DURATION}s at concurrency $CONCURRENCY"
    (cd "$ROOT/tests/peers" && node "$DRIVER" "$RUN/driver/$protocol-$path.json") | tee -a results.jsonl >&2
  done
done

# ---- the table ----------------------------------------------------------------------------
{
  echo "Logins through a real IdP, $(date -u +%FT%TZ), nymgate $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'),"
  echo "oidc-provider $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$ROOT/tests/peers/node_modules/oidc-provider/package.json"),\
 SimpleSAMLphp $(dpkg-query -W -f '${Version}' simplesamlphp 2>/dev/null || echo '?'),\
 SATOSA $("$VENV/bin/pip" show SATOSA 2>/dev/null | sed -n 's/^Version: //p') (gunicorn, 1 worker × $SATOSA_THREADS threads),\
 node $(node --version), $(nproc) cores, concurrency $CONCURRENCY, ${DURATION}s measured after ${WARMUP}s warm-up per path; driver, IdPs and proxies on the same machine."
  echo
  python3 - <<'EOF'
import json
rows = [json.loads(l) for l in open("results.jsonl") if l.strip()]
by = {r["label"]: r for r in rows}
print("| protocol | path | logins/s | p50 ms | p99 ms | errors |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
fmt = lambda v, d=1: "–" if v is None else f"{v:,.{d}f}"
for label, r in by.items():
    protocol, path = label.split("/")
    if r.get("failed") or r.get("once"):
        print(f"| {protocol} | {path} | {'failed' if r.get('failed') else 'one login ok'} | | | |")
        continue
    print(f"| {protocol} | {path} | {fmt(r['logins_per_s'])} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {r['errors']} |")
print()
for protocol in ("oidc", "saml"):
    n = by.get(f"{protocol}/nymgate")
    if not n or "logins_per_s" not in n:
        continue
    for other in ("direct", "satosa"):
        o = by.get(f"{protocol}/{other}")
        if o and o.get("logins_per_s"):
            print(f"- {protocol}: nymgate/{other} logins/s = **{n['logins_per_s'] / o['logins_per_s']:.2f}**")
EOF
} | tee results.md
say "raw results and logs in $RUN"
if [[ ${KEEP:-0} == 1 ]]; then say "KEEP=1: servers stay up until Ctrl-C"; wait; fi
exit $status
