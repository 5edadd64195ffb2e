#!/bin/bash
# Neutron's own API tests against moat: tempest 33 and neutron-tempest-plugin 2.0.0 (Debian 12)
# run against `moat server --auth keystone` and a real Keystone 22 (Zed) on a private PostgreSQL.
#
# Usage: tempest/run.sh MOAT_BINARY [extended|core|REGEX]        (default extended)
#   extended  (make test) run the extended selection (146 tests), which holds the core one
#             (100 tests), and require both verdicts: core 100 passed; extended 146 passed
#             and nothing skipped
#   core      run the core selection alone and require its verdict
#   REGEX     run the tests matching REGEX and report them (fails only if one fails)
# The selections and the verdicts are in tempest/selection.py.
#
# Everything runs on free ports of 127.0.0.1 inside one temporary directory (PostgreSQL
# cluster, Keystone, moat's SQLite database, the tempest workspace, HOME) which is deleted,
# with every process started here, on exit. MOAT_TEMPEST_KEEP=1 keeps the directory (logs).
# Env: MOAT_TEMPEST_CONCURRENCY (default 2).
# Needs root (the cluster runs as the postgres user) and the Debian packages `make deps`
# installs: tempest, neutron-tempest-plugin, python3-keystone, postgresql, python3-psycopg2.
set -euo pipefail
# Debian's python3 and tools, whatever python a developer's PATH prefers
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the checkout
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MOAT="$(realpath "${1:?usage: $0 MOAT_BINARY [extended|core|REGEX]}")"
SEL="${2:-extended}"
CONC="${MOAT_TEMPEST_CONCURRENCY:-2}"
PG_BIN=/usr/lib/postgresql/15/bin

log() { printf '[tempest %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[tempest] FAIL: %s\n' "$*" >&2; exit 1; }

# --- the exact versions the verdicts were measured with
need_version() { # package version-prefix
  local v
  v=$(dpkg-query -W -f='${Version}' "$1" 2>/dev/null) || die "Debian package $1 is not installed (make deps)"
  [[ "$v" == "$2"* ]] || die "$1 is $v; the verdicts hold for $2* (Debian 12)"
}
need_version tempest 1:33.
need_version neutron-tempest-plugin 2.0.0
need_version python3-keystone 2:22.
need_version postgresql-15 15.
need_version python3-psycopg2 ''
[ "$(id -u)" = 0 ] || die "needs root: the PostgreSQL cluster runs as the postgres user"
[ -x "$MOAT" ] || die "$MOAT is not an executable"
# the verdict first: a checker that passes everything would make this whole run pointless
python3 -W ignore "$HERE/selection_test.py" >/dev/null 2>&1 ||
  { python3 -W ignore "$HERE/selection_test.py" >&2 || true; die "tempest/selection_test.py"; }

# --- one directory for everything, removed with every process on exit
TOP=$(mktemp -d /tmp/moat-tempest.XXXXXX)
chmod 711 "$TOP" # the postgres user must reach its data directory below
PIDS=()   # Keystone and moat
STESTR="" # stestr and its workers: a process group of their own, led by this pid
cleanup() {
  local rc=$?
  set +e
  [ -z "$STESTR" ] || kill -- "-$STESTR" 2>/dev/null
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in $STESTR "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ -f "$TOP/pg/data/postmaster.pid" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$TOP/pg/data" -m immediate -w stop >/dev/null 2>&1
  fi
  if [ "${MOAT_TEMPEST_KEEP:-}" = 1 ]; then log "kept $TOP"; else rm -rf "$TOP"; fi
  exit $rc
}
trap cleanup EXIT
# (bash runs these only between foreground commands: the long ones run in the background)
trap 'exit 130' INT TERM
mkdir -p "$TOP"/{pg,keystone/fernet-keys,keystone/credential-keys,moat,ws/etc,ws/logs,ws/lock,home}
chown postgres:postgres "$TOP/pg"
chmod 700 "$TOP"/keystone/{fernet-keys,credential-keys}
mkdir "$TOP/tmp"
# tempest and stestr keep nothing in the caller's home, nor in /tmp (stestr's test lists)
export HOME="$TOP/home" TMPDIR="$TOP/tmp"

read -r PG_PORT KS_PORT MOAT_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
KEYSTONE="http://127.0.0.1:$KS_PORT/v3"
NEUTRON="http://127.0.0.1:$MOAT_PORT"

wait_http() { # name url pid
  for _ in $(seq 1 480); do
    curl -s --max-time 10 -o /dev/null "$2" && return 0
    kill -0 "$3" 2>/dev/null || { tail -n 30 "$TOP"/*/*.log >&2 || true; die "$1 exited"; }
    sleep 0.25
  done
  die "$1 did not answer on $2"
}

T0=$(date +%s)
# --- PostgreSQL for Keystone: Keystone on SQLite answers 500 "database is locked" under
# tempest's parallel writes. A private cluster: never the machine's own.
log "PostgreSQL on 127.0.0.1:$PG_PORT"
runuser -u postgres -- "$PG_BIN/initdb" -D "$TOP/pg/data" -A trust -U postgres >"$TOP/pg/initdb.log" 2>&1 ||
  { cat "$TOP/pg/initdb.log" >&2; die "initdb"; }
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$TOP/pg/data" -l "$TOP/pg/pg.log" -w \
  -o "-p $PG_PORT -k $TOP/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null || { cat "$TOP/pg/pg.log" >&2; die "pg_ctl start"; }
runuser -u postgres -- "$PG_BIN/createdb" -h "$TOP/pg" -p "$PG_PORT" keystone

# --- Keystone: fernet tokens, bootstrap admin (admin/admin-pass, project admin, roles admin,
# member and reader), and moat registered as the 'network' service.
log "Keystone on $KEYSTONE"
cat >"$TOP/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $TOP/keystone/keystone.log
use_stderr = false
[database]
connection = postgresql+psycopg2://postgres@127.0.0.1:$PG_PORT/keystone
[identity]
# tempest creates users for every test class; bcrypt's default 12 rounds cost ~0.3 s a token
password_hash_rounds = 4
[token]
provider = fernet
expiration = 14400
[fernet_tokens]
key_repository = $TOP/keystone/fernet-keys
[fernet_receipts]
key_repository = $TOP/keystone/fernet-keys
[credential]
key_repository = $TOP/keystone/credential-keys
[cache]
# Without a cache, validating one token costs Keystone over a second of CPU (2 cores shared
# with tempest and moat): tempest's calls then time out. One process, so an in-memory cache
# stays coherent.
enabled = true
backend = dogpile.cache.memory
EOF
km() {
  keystone-manage --config-file "$TOP/keystone/keystone.conf" "$@" >>"$TOP/keystone/manage.log" 2>&1 ||
    { tail -n 30 "$TOP/keystone/manage.log" >&2; die "keystone-manage $1"; }
}
km db_sync
# What fernet_setup and credential_setup write (a staged key 0 and a primary key 1), without
# two more keystone-manage runs of ~10 s each on a busy machine
python3 -c '
import os, sys
from cryptography.fernet import Fernet
for d in sys.argv[1:]:
    for n in ("0", "1"):
        fd = os.open(os.path.join(d, n), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, Fernet.generate_key())
        os.close(fd)
' "$TOP/keystone/fernet-keys" "$TOP/keystone/credential-keys"
km bootstrap --bootstrap-password admin-pass --bootstrap-username admin \
  --bootstrap-project-name admin --bootstrap-role-name admin \
  --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
  --bootstrap-public-url "$KEYSTONE/" --bootstrap-internal-url "$KEYSTONE/" --bootstrap-admin-url "$KEYSTONE/"
python3 "$HERE/ksctl.py" serve "$TOP/keystone/keystone.conf" "$KS_PORT" >"$TOP/keystone/serve.log" 2>&1 &
PIDS+=($!)
wait_http Keystone "$KEYSTONE" "${PIDS[-1]}"
python3 "$HERE/ksctl.py" register-network "$KEYSTONE" "$NEUTRON"

# --- moat, validating every X-Auth-Token against that Keystone, on a fresh database
log "moat server on $NEUTRON"
"$MOAT" server --listen "127.0.0.1:$MOAT_PORT" --db "sqlite://$TOP/moat/moat.db" \
  --auth keystone --keystone-url "$KEYSTONE" --log-level warn >"$TOP/moat/server.log" 2>&1 &
PIDS+=($!)
wait_http moat "$NEUTRON/" "${PIDS[-1]}"
EXTS=$(python3 "$HERE/ksctl.py" extensions "$KEYSTONE" "$NEUTRON") || die "GET /v2.0/extensions"
log "moat lists: $EXTS"

# --- the tempest workspace (written here, not by `tempest init`, which registers the
# workspace in ~/.tempest)
TDIR=/usr/lib/python3/dist-packages
cat >"$TOP/ws/.stestr.conf" <<EOF
[DEFAULT]
test_path=$TDIR/tempest/test_discover
top_dir=$TDIR
group_regex=([^\.]*\.)*
EOF
cat >"$TOP/ws/etc/tempest.conf" <<EOF
[DEFAULT]
log_dir = $TOP/ws/logs
log_file = tempest.log
debug = true

[oslo_concurrency]
lock_path = $TOP/ws/lock

[auth]
admin_username = admin
admin_password = admin-pass
admin_project_name = admin
admin_domain_name = Default
default_credentials_domain_name = Default
use_dynamic_credentials = true
create_isolated_networks = false

[identity]
uri_v3 = $KEYSTONE
auth_version = v3
region = RegionOne
v3_endpoint_type = public

[identity-feature-enabled]
api_v2 = false
api_v3 = true

[service_available]
neutron = true
nova = false
glance = false
cinder = false
swift = false

[network]
region = RegionOne
endpoint_type = public
project_network_cidr = 10.100.0.0/16
project_network_v6_cidr = 2001:db8::/48
shared_physical_network = false

[network-feature-enabled]
ipv6 = true
ipv6_subnet_attributes = true
port_security = true
api_extensions = $EXTS

[validation]
run_validation = false

[enforce_scope]
neutron = false

[neutron_plugin_options]
available_type_drivers = flat,vlan,vxlan
provider_vlans = public
EOF
export TEMPEST_CONFIG_DIR="$TOP/ws/etc" TEMPEST_CONFIG=tempest.conf

case "$SEL" in
  core | extended) REGEX=$(python3 "$HERE/selection.py" regex "$SEL") ;;
  *) REGEX="$SEL" ;;
esac
T1=$(date +%s)
log "ready in $((T1 - T0))s; running $SEL with concurrency $CONC"
cd "$TOP/ws"
stestr init >/dev/null
# stestr's own exit status only says whether something failed; the verdict is selection.py's
setsid stestr run --concurrency "$CONC" --subunit "$REGEX" >"$TOP/ws/results.subunit" 2>"$TOP/ws/stestr.err" &
STESTR=$!
wait "$STESTR" || true
STESTR=""
T2=$(date +%s)
log "tests ran in $((T2 - T1))s (total $((T2 - T0))s)"
if ! [ -s "$TOP/ws/results.subunit" ]; then
  cat "$TOP/ws/stestr.err" >&2
  die "stestr produced no results"
fi
case "$SEL" in
  core | extended) python3 "$HERE/selection.py" check "$SEL" "$TOP/ws/results.subunit" ;;
  *) python3 "$HERE/selection.py" report "$TOP/ws/results.subunit" ;;
esac || {
  log "moat's log (last 40 lines):"
  tail -n 40 "$TOP/moat/server.log"
  exit 1
}
