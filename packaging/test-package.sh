#!/usr/bin/env bash
# Builds the Debian package of komle-cm and checks what an administrator would get from it
# (issue 18, "Install"); .ci/run calls it before the test suite.
#
#   1. cargo-deb (installed into ~/.cargo/bin if missing; CI may cache that directory),
#   2. `cargo deb -p komle-smol`: a release build of komle-cm (5-8 min on 2 cores) and the .deb,
#   3. the package unpacked with `dpkg-deb -x` into a temp root: files, modes, conffile,
#      maintainer scripts, the unit's hardening, the man page, the binary's size,
#   4. `systemd-analyze verify` of the unit where systemd-analyze exists (skipped otherwise),
#   5. the unpacked binary started with the unit's ExecStart command line (paths moved into the
#      temp root), as an unprivileged user, against a Konnektor simulator: it must listen on its
#      SMTP port and exit 0 on SIGTERM. Before that, --check-config on the packaged conffile.
#
# Nothing is installed on the machine (no dpkg -i): the checks run on the unpacked tree. Every
# process it starts is stopped by its pid; the temp root is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'test-package: %s\n' "$*"; }
fail() { printf 'test-package: FAIL: %s\n' "$*" >&2; exit 1; }

if ! command -v cargo-deb >/dev/null 2>&1; then
  say "installing cargo-deb"
  cargo install cargo-deb --locked --quiet
fi

started=$(date +%s)
deb=$(cargo deb -p komle-smol --quiet 2>/dev/null | tail -n 1) || {
  cargo deb -p komle-smol >&2 || true
  fail "cargo deb failed"
}
[ -f "$deb" ] || fail "cargo deb printed no package path (got: $deb)"
say "built $deb in $(( $(date +%s) - started )) s"

root=$(mktemp -d /tmp/komle-package.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$root"
}
trap cleanup EXIT
dpkg-deb -x "$deb" "$root/tree"
dpkg-deb -e "$deb" "$root/control"
tree="$root/tree"

# --- files, modes, conffile, maintainer scripts -------------------------------------------
unit=""
for u in "$tree/lib/systemd/system/komle-cm.service" "$tree/usr/lib/systemd/system/komle-cm.service"; do
  [ -f "$u" ] && unit="$u"
done
[ -n "$unit" ] || fail "no systemd unit komle-cm.service in the package"
[ -x "$tree/usr/bin/komle-cm" ] || fail "usr/bin/komle-cm missing or not executable"
[ -f "$tree/etc/komle-cm/komle-cm.toml" ] || fail "etc/komle-cm/komle-cm.toml missing"
ls "$tree"/usr/share/man/man8/komle-cm.8* >/dev/null 2>&1 || fail "man page missing"
for doc in copyright LICENSE CHANGELOG.md README.md; do
  ls "$tree/usr/share/doc/komle-cm/$doc"* >/dev/null 2>&1 || fail "usr/share/doc/komle-cm/$doc missing"
done
grep -qx "/etc/komle-cm/komle-cm.toml" "$root/control/conffiles" \
  || fail "/etc/komle-cm/komle-cm.toml is not a conffile"
grep -q "adduser --system" "$root/control/postinst" || fail "postinst creates no system user"
grep -q "komle-cm" "$root/control/postinst" || fail "postinst does not name the user komle-cm"
size=$(stat -c %s "$tree/usr/bin/komle-cm")
[ "$size" -lt $((40 * 1024 * 1024)) ] || fail "komle-cm is $size bytes: debug info shipped?"
say "package contents ok (komle-cm $((size / 1024 / 1024)) MB)"

# --- the unit's hardening -----------------------------------------------------------------
for directive in "User=komle-cm" "AmbientCapabilities=CAP_NET_BIND_SERVICE" \
    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" "ProtectSystem=strict" "PrivateTmp=yes" \
    "MemoryDenyWriteExecute=yes" "NoNewPrivileges=yes" "LimitCORE=0" \
    "LoadCredential=keystore-password:" "ExecReload=/bin/kill -HUP \$MAINPID"; do
  grep -q "^${directive}" "$unit" || fail "unit lacks ${directive}"
done
if command -v systemd-analyze >/dev/null 2>&1; then
  # The unit as packaged, with only the binary's path moved into the unpacked tree (verify
  # checks that ExecStart is executable) and the packaged man page on MANPATH (verify runs
  # `man` for Documentation=). Any message is a failure.
  mkdir -p "$root/verify"
  sed "s|/usr/bin/komle-cm|$tree/usr/bin/komle-cm|g" "$unit" >"$root/verify/komle-cm.service"
  out=$(MANPATH="$tree/usr/share/man" systemd-analyze verify "$root/verify/komle-cm.service" 2>&1) \
    || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
  say "systemd-analyze verify ok"
else
  say "systemd-analyze not installed: unit verification skipped"
fi

# --- start the unpacked binary with the unit's command line ------------------------------
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$exec_start" ] || fail "unit has no ExecStart"
work="$root/run"
mkdir -p "$work"
chmod 755 "$root" "$work"
# The packaged conffile parses with the unit's own command line.
check_line=${exec_start//\/usr\/bin\/komle-cm/$tree\/usr\/bin\/komle-cm}
check_line=${check_line//\/etc\/komle-cm\/komle-cm.toml/$tree\/etc\/komle-cm\/komle-cm.toml}
# On a fresh install the site's certificates, CAs and key store are not there yet, and
# --check-config opens every file it names: the only complaints allowed are missing files
# (every key and value parses, exit 2 for the missing files).
# shellcheck disable=SC2086
if $check_line --check-config >"$work/check.out" 2>&1; then
  grep -q "config ok" "$work/check.out" || fail "--check-config said: $(cat "$work/check.out")"
else
  grep -q "cannot open: No such file or directory" "$work/check.out" \
    || fail "--check-config of the packaged conffile: $(cat "$work/check.out")"
  if grep -v "cannot open: No such file or directory" "$work/check.out" | grep -q "config error"; then
    fail "--check-config of the packaged conffile: $(cat "$work/check.out")"
  fi
  say "packaged conffile parses; it names $(grep -c 'cannot open' "$work/check.out") site file(s) not installed yet"
fi

# A Konnektor to start against (komle-cm fetches connector.sds at start).
cargo build --quiet -p komle-conformance --bin konnektor-sim
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
"$target_dir/debug/konnektor-sim" --export "$work/sim" >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
for _ in $(seq 1 300); do
  grep -q "connector.sds" "$work/sim.out" 2>/dev/null && break
  sleep 0.1
done
sds=$(grep -m1 "connector.sds" "$work/sim.out") || fail "konnektor-sim did not start: $(cat "$work/sim.err")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/server.key" -out "$work/server.pem" 2>/dev/null
chmod 644 "$work"/server.* "$work"/sim/*
port=$(( 20000 + RANDOM % 10000 ))
cat >"$work/komle-cm.toml" <<EOF
[smtp]
listen = "127.0.0.1:$port"
[tls]
certificate = "$work/server.pem"
private_key = "$work/server.key"
[upstream]
smtp = ["127.0.0.1:465"]
[konnektor]
sds_url = "$sds"
ca = "$work/sim/tls-ca.pem"
[directory]
url = "ldap://127.0.0.1:389"
base = "dc=test"
[timeouts]
shutdown_grace = "2s"
EOF
chmod 644 "$work/komle-cm.toml"
run_line=${exec_start//\/usr\/bin\/komle-cm/$tree\/usr\/bin\/komle-cm}
run_line=${run_line//\/etc\/komle-cm\/komle-cm.toml/$work\/komle-cm.toml}
# As the unit runs it: an unprivileged user, no capabilities (the port is above 1024).
as_user=()
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --bounding-set=-all)
fi
# shellcheck disable=SC2086
"${as_user[@]}" $run_line >"$work/komle-cm.log" 2>&1 &
cm=$!
pids+=("$cm")
listening=""
for _ in $(seq 1 300); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then listening=1; break; fi
  kill -0 "$cm" 2>/dev/null || break
  sleep 0.1
done
[ -n "$listening" ] || fail "komle-cm did not listen on $port: $(cat "$work/komle-cm.log")"
kill -TERM "$cm"
status=0
wait "$cm" || status=$?
[ "$status" = 0 ] || fail "komle-cm exited $status after SIGTERM: $(cat "$work/komle-cm.log")"
grep -q "listening on 127.0.0.1:$port" "$work/komle-cm.log" || fail "no listening line: $(cat "$work/komle-cm.log")"
say "unpacked komle-cm started with the unit's ExecStart as ${as_user[*]:+nobody}, listened on $port, stopped on SIGTERM"
say "ok"
