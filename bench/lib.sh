# Shared by the passthrough benchmarks (bench/proxy.sh, bench/ab.sh); sourced, not run.

# Installs nginx and h2load (Debian) when missing; as root only.
install_bench_tools() {
  local need=()
  command -v nginx >/dev/null || need+=(nginx)
  command -v h2load >/dev/null || need+=(nghttp2-client)
  ((${#need[@]})) || return 0
  if [[ $(id -u) == 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "install: ${need[*]}" >&2
    exit 1
  fi
}

# Writes DIR/nginx.conf for the upstream every path shares: nginx, one worker (the two cores are
# shared by it, the proxy under test and h2load), `return 200` on 127.0.0.1:PORT, and on
# H2C_PORT over cleartext HTTP/2 when given.
write_upstream_conf() { # DIR PORT [H2C_PORT]
  local h2c=""
  [[ -n ${3:-} ]] && h2c="server { listen 127.0.0.1:$3 http2; location / { return 200 \"ok\\n\"; } }"
  mkdir -p "$1/logs"
  cat >"$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $1/logs/error.log warn;
pid $1/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$2; location / { return 200 "ok\n"; } }
  $h2c
}
CONF
}

# nymgate's config for the benchmarks: LISTEN and ADMIN ports on 127.0.0.1, the certificates in
# $OUT/certs, the upstream on $UP, any extra [limits] lines, any extra [upstream] lines (the
# fourth argument, or UPSTREAM_EXTRA, e.g. 'pool_per_client_connection = true', to measure it).
nymgate_config() { # LISTEN ADMIN [EXTRA_LIMITS] [EXTRA_UPSTREAM]
  cat <<EOF
[server]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"
cert_file = "$OUT/certs/localhost.pem"
key_file = "$OUT/certs/localhost-key.pem"
[upstream]
url = "http://127.0.0.1:$UP"
${4:-}
${UPSTREAM_EXTRA:-}
[limits]
idle_timeout = "120s"
${3:-}
[log]
level = "warn"
EOF
}
