#!/usr/bin/env bash
# `make fleet`: a local PostgreSQL (as its own unprivileged user, data in ./fleet/pg,
# 127.0.0.1 only) and three ocspd nodes sharing it, the first creating the demo PKI. Prints
# how to query each; Ctrl-C stops them all. State stays in ./fleet for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
DIR="$PWD/fleet"
PGPORT=${PGPORT:-55432}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
URL="postgresql://ocspd@127.0.0.1:$PGPORT/postgres"

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

mkdir -p "$DIR"
if [ ! -d "$DIR/pg" ]; then
  mkdir -p "$DIR/pg-run"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR" "$DIR/pg-run"
  as_pg "$PGBIN/initdb" -D "$DIR/pg" -U ocspd -A trust -E UTF8 >/dev/null
fi
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$DIR/pg" "$DIR/pg-run"
as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -l "$DIR/pg-run/pg.log" -w \
  -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $DIR/pg-run" start >/dev/null
echo "fleet: PostgreSQL on 127.0.0.1:$PGPORT (data $DIR/pg, log $DIR/pg-run/pg.log)"

pids=()
stop() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -m fast -w stop >/dev/null || true
  echo "fleet: stopped"
}
trap stop EXIT INT TERM

start_node() {
  local n=$1 extra=${2:-}
  local port=$((8080 + 100 * n))
  mkdir -p "$DIR/node$n"
  # shellcheck disable=SC2086
  "$BIN/ocspd" --data-dir "$DIR/node$n" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$((port + 1))" \
    --metrics-listen "127.0.0.1:$((port + 2))" --fleet-db "$URL" --node-name "node$n" $extra \
    >"$DIR/node$n.out" 2>"$DIR/node$n.log" &
  pids+=($!)
  for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
      echo "fleet: node$n ready on http://127.0.0.1:$port (admin :$((port + 1)), metrics :$((port + 2))/metrics; log $DIR/node$n.log)"
      return
    fi
    sleep 0.2
  done
  echo "fleet: node$n did not become ready; see $DIR/node$n.log" >&2
  exit 1
}

start_node 1 --demo
start_node 2
start_node 3
D="$DIR/node1/demo"
echo
echo "Demo PKI in $D: leaf-1 and leaf-2 are good, leaf-3 is revoked. Ask every node:"
for n in 1 2 3; do
  echo "  openssl ocsp -issuer $D/intermediate.pem -cert $D/leaf-1.pem -cert $D/leaf-3.pem -url http://127.0.0.1:$((8080 + 100 * n)) -CAfile $D/chain.pem -no_nonce"
done
echo
echo "Revoke through node1, see node2 and node3 answer revoked:"
echo "  $BIN/ocspctl --admin-url http://127.0.0.1:8181 --token-file $DIR/node1/admin.token revoke --issuer demo-intermediate --serial <hex> --reason keyCompromise"
echo "Who signs, who purges, each node's lag:"
echo "  $BIN/ocspctl --admin-url http://127.0.0.1:8281 --token-file $DIR/node2/admin.token fleet status"
echo
echo "Ctrl-C stops the fleet."
wait
