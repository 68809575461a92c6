#!/usr/bin/env bash
# Smoke test of a built Astral Boot: the release runs it on each compiled executable on a
# runner of its architecture, CI on the bundle's launcher (tests/package_test.ts).
#
#   sudo tools/smoke.sh PROGRAM [VERSION]
#
# --version; `config` with a temporary config; `leases` on an empty data dir; then `serve` in a
# network namespace of its own (only loopback inside: nothing reaches a real network): an HTTP
# boot script (embedded templates), a TFTP file (the FFI sockets bound to the interface) and
# /metrics; then `leases` and `machine list` on the database serve made (SQLite). Needs root
# (unshare), curl with TFTP, ip. Prints one line per check.
set -euo pipefail

program=$(readlink -f "${1:?usage: tools/smoke.sh PROGRAM [VERSION]}")
version=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
fail() {
  echo "smoke: FAIL: $*" >&2
  exit 1
}

out=$("$program" --version)
[ -z "$version" ] || [ "$out" = "astralboot $version" ] || fail "--version said '$out', not astralboot $version"
echo "smoke: ok --version: $out"

mkdir -p "$tmp/tree/boot/smoke/images" "$tmp/tree/tftp"
printf 'title = "Smoke"\nkernel = "vmlinuz"\n' >"$tmp/tree/boot/smoke/os.toml"
head -c 4096 /dev/urandom >"$tmp/tree/boot/smoke/images/vmlinuz"
head -c 70000 /dev/urandom >"$tmp/tree/tftp/loader.bin"
cat >"$tmp/config.toml" <<EOF
interface = "lo"
data_dir = "$tmp/data"
[dhcp]
mode = "off"
router_advertisement = false
[tftp]
port = 6969
[http]
port = 8080
address = "127.0.0.1"
[boot]
default = "smoke"
EOF

out=$("$program" config -c "$tmp/config.toml")
grep -qF "data_dir = \"$tmp/data\"" <<<"$out" || fail "config does not show the data_dir it was given"
grep -qF 'mode = "off"' <<<"$out" || fail "config does not show [dhcp] mode"
echo "smoke: ok config"

"$program" leases -c "$tmp/config.toml" >"$tmp/leases.out" || fail "leases: $(cat "$tmp/leases.out")"
grep -q "no leases yet" "$tmp/leases.out" || fail "leases on an empty data dir: $(cat "$tmp/leases.out")"
echo "smoke: ok leases (empty data dir)"

[ "$(id -u)" = 0 ] || fail "serve needs root for its network namespace (run with sudo)"
# Inside a fresh network namespace (unshare -n) that ends with this shell: only loopback.
unshare --net bash -euo pipefail -c '
  program=$1 tmp=$2
  ip link set lo up
  "$program" serve -c "$tmp/config.toml" -l "$tmp/tree" --log-format json >"$tmp/serve.log" 2>&1 &
  pid=$!
  stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  trap stop EXIT
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null http://127.0.0.1:8080/metrics && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; echo "smoke: FAIL: serve exited" >&2; exit 1; }
    sleep 0.2
  done
  curl -sf http://127.0.0.1:8080/boot.ipxe >"$tmp/boot.ipxe" ||
    { cat "$tmp/serve.log" >&2; echo "smoke: FAIL: GET /boot.ipxe" >&2; exit 1; }
  head -1 "$tmp/boot.ipxe" | grep -q "^#!ipxe" || { echo "smoke: FAIL: /boot.ipxe is no iPXE script" >&2; exit 1; }
  echo "smoke: ok serve: HTTP /boot.ipxe rendered"
  curl -sf --tftp-blksize 1468 -o "$tmp/loader.got" tftp://127.0.0.1:6969/tftp/loader.bin ||
    { cat "$tmp/serve.log" >&2; echo "smoke: FAIL: TFTP tftp/loader.bin" >&2; exit 1; }
  cmp -s "$tmp/loader.got" "$tmp/tree/tftp/loader.bin" || { echo "smoke: FAIL: TFTP file differs" >&2; exit 1; }
  echo "smoke: ok serve: TFTP file intact"
  # To a file first: grep -q stops reading at the first match, and pipefail would count the
  # write error that gives curl.
  curl -sf -o "$tmp/metrics" http://127.0.0.1:8080/metrics ||
    { echo "smoke: FAIL: GET /metrics" >&2; exit 1; }
  grep -q "^astralboot_build_info{" "$tmp/metrics" ||
    { echo "smoke: FAIL: /metrics has no astralboot_build_info" >&2; exit 1; }
  echo "smoke: ok serve: /metrics"
' smoke "$program" "$tmp"

# The database serve made, read again by an admin command (SQLite through node:sqlite).
[ -s "$tmp/data/leases.db" ] || fail "serve made no database in $tmp/data"
"$program" leases -c "$tmp/config.toml" >"$tmp/leases.out" || fail "leases: $(cat "$tmp/leases.out")"
grep -qF "$tmp/data/leases.db" "$tmp/leases.out" || fail "leases did not read $tmp/data/leases.db"
"$program" machine list -c "$tmp/config.toml" >/dev/null || fail "machine list"
echo "smoke: ok leases and machine list on the database serve made"
echo "smoke: all ok"
