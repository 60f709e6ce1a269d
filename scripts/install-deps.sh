#!/usr/bin/env bash
# Installs what `make run`, `make test` and `make bench` need and a fresh Debian machine lacks.
# Only missing pieces are installed; run it as often as you like.
#   scripts/install-deps.sh          run + test needs
#   scripts/install-deps.sh bench    also the benchmark load generator (wrk)
set -euo pipefail

want_bench=${1:-}
missing=()

have() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

have openssl || missing+=(openssl)
have curl || missing+=(curl)
have python3 || missing+=(python3 python3-pip)
# bindgen (librocksdb-sys) needs libclang; the C++ build needs a compiler.
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
have clang || missing+=(clang)
have g++ || missing+=(g++)
# A test builds a tiny shared library to show ocspd never loads a PKCS#11 module off its list.
have cc || missing+=(gcc)
have make || missing+=(make)
# PKCS#11 tests and benchmarks sign through a real SoftHSM2 token.
have softhsm2-util || missing+=(softhsm2)
# The edge-cache tests run the real Varnish with varnish-modules (xkey, bodyaccess) and check
# the nginx snippet with nginx itself.
have varnishd || [ -x /usr/sbin/varnishd ] || missing+=(varnish)
have_pkg varnish-modules || missing+=(varnish-modules)
have nginx || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
# The systemd unit in deploy/ is checked by `systemd-analyze verify` (installing the package
# does not make systemd the init of a container).
have systemd-analyze || missing+=(systemd)
# Fleet mode: the tests and `make fleet` start a real PostgreSQL (server and client).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
have psql || missing+=(postgresql-client)
have runuser || missing+=(util-linux)
if [ "$want_bench" = bench ]; then
  have wrk || missing+=(wrk)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! python3 -c 'import cryptography.x509.ocsp' >/dev/null 2>&1; then
  echo "install-deps: installing Python cryptography"
  python3 -m pip install --quiet --disable-pip-version-check cryptography \
    || python3 -m pip install --quiet --break-system-packages cryptography
fi

# pkilint (DigiCert's linter for certificates and CRLs, BR and RFC 5280 profiles): the tests
# lint every CRL ocspd makes with it.
if ! python3 -c 'import pkilint.bin.lint_crl' >/dev/null 2>&1; then
  echo "install-deps: installing pkilint"
  python3 -m pip install --quiet --disable-pip-version-check 'pkilint==0.13.3' \
    || python3 -m pip install --quiet --break-system-packages 'pkilint==0.13.3'
fi
