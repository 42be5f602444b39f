#!/usr/bin/env bash
# The whole test suite, with every peer it needs installed first. README.md "Quick start" names
# this script; .ci/run calls it. On a fresh machine, run as root so that Debian packages install.
#
# Peers are pinned in the repository (Debian package names here; npm and PyPI manifests beside
# the tests that use them). In CI (CI=true) a missing peer is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the test suite talks to. `curl` is a second, independent HTTP/2 and TLS client.
DEB_PACKAGES=(curl)
# SimpleSAMLphp 1.19 is the school's SAML IdP in the SAML tests (on PHP's built-in server; the
# php-* packages named so that Apache is not pulled in, shared/PEERS.md).
DEB_PACKAGES+=(simplesamlphp php-cli php-xml php-mbstring php-curl php-intl)
# xmlsec1 is what pysaml2 signs with (the second SAML signer, tests/peers/requirements.txt).
DEB_PACKAGES+=(xmlsec1)
# Chromium runs the browser test of `nymgate demo` (tests/browser.rs, through playwright-core),
# with a font for its screenshots.
DEB_PACKAGES+=(chromium fonts-dejavu-core)
# nginx is a platform nymgate's own HTTP/1.1 client talks to (tests/upstream_client.rs): pooled
# keep-alive connections, chunked responses, TLS.
DEB_PACKAGES+=(nginx)
# redis-server is the shared store of several replicas (tests/replicas.rs).
DEB_PACKAGES+=(redis-server)
# postgresql is the retention store shared by replicas (tests/retention.rs starts a cluster of
# its own per test; the package's own cluster is not used).
DEB_PACKAGES+=(postgresql)
# opensaml-tools gives samlsign (C++ OpenSAML, under the Shibboleth SP): a third SAML platform
# checking nymgate's signed responses (tests/saml_out.rs).
DEB_PACKAGES+=(opensaml-tools)
# Node.js runs the OIDC peers (tests/peers); the machine's own node is used when present.
command -v node >/dev/null 2>&1 || DEB_PACKAGES+=(nodejs npm)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    echo "==> installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

echo "==> node peers (tests/peers/package-lock.json): oidc-provider, openid-client, samlify, @node-saml/node-saml, standardwebhooks, undici, playwright-core"
npm ci --prefix tests/peers --no-audit --no-fund --loglevel=error

echo "==> python peers (tests/peers/requirements.txt): pysaml2, python3-saml, kubernetes-validate, prometheus_client, in tests/peers/.venv"
[[ -x tests/peers/.venv/bin/python ]] || python3 -m venv tests/peers/.venv
tests/peers/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/peers/requirements.txt

# CI builds once from a clean clone: incremental caches would only take disk (several GB here).
if [[ ${CI:-} == true ]]; then export CARGO_INCREMENTAL=0; fi

echo "==> formatting and lints"
cargo fmt --all -- --check
cargo clippy --locked --all-targets --all-features -- -D warnings

echo "==> ring must not be in the dependency tree (shared/DEPENDENCIES.md)"
if cargo tree --locked -e normal -i ring 2>/dev/null | grep -q ring; then
  echo "ring is in the dependency tree:" >&2
  cargo tree --locked -e normal -i ring >&2
  exit 1
fi

echo "==> tests"
cargo test --locked --all-targets --all-features
# `--all-targets` leaves out documentation tests; the library's are the compiler's proof that
# only a verifier can build a VerifiedIdentity (src/verify/identity.rs, compile_fail examples).
cargo test --locked --doc --all-features

# In CI the test build is done with: free its disk before the fuzz build (its own target dir,
# instrumented), so that the peak is the larger of the two builds, not their sum.
if [[ ${CI:-} == true ]]; then rm -rf target/debug; fi

# Every fuzz target gets a short bounded run on every CI run (by hand, ten minutes each:
# `bash fuzz/run.sh 600`; README.md records those). It installs cargo-fuzz when missing.
echo "==> fuzzing every target for 30 s"
bash fuzz/run.sh 30
