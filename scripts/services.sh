#!/usr/bin/env bash
# Bring up, on loopback, the services kfguard's tests and demo talk to:
#   MariaDB    127.0.0.1:3306  (root, empty password, database `test`)
#   PostgreSQL 127.0.0.1:5432  (trust auth; roles postgres and root; databases test, root)
#   S3 (moto)  127.0.0.1:${KFGUARD_S3_PORT:-9000}
# plus the `restic` binary, which tests use to check repository interoperability, and `kubectl`,
# which tests point at the stand-in Kubernetes API server (tests/standin) to check its fidelity,
# `promtool` (Debian's `prometheus` package, the daemon left stopped), which checks the alert rules,
# and `chromium`, in which tests load the runbook drill report as a person would see it.
#
# Usage: scripts/services.sh up|down|env|status
#   up      start (or reuse) everything; safe to run any number of times
#   down    stop what this script started itself (moto); system databases stay up
#   env     print `export` lines for the tests:  eval "$(scripts/services.sh env)"
#   status  one line per service; exits 1 if any service is down
#
# Environment:
#   KFGUARD_SERVICES_DIR  where the moto virtualenv, pid and log files live
#                         (default: <repo>/.services)
#   KFGUARD_S3_PORT       port for the moto S3 server (default: 9000)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
SERVICES_DIR=${KFGUARD_SERVICES_DIR:-$REPO/.services}
S3_PORT=${KFGUARD_S3_PORT:-9000}

MYSQL_HOST=127.0.0.1
MYSQL_PORT=3306
PG_HOST=127.0.0.1
PG_PORT=5432

VENV=$SERVICES_DIR/venv
MOTO_PID=$SERVICES_DIR/moto.pid
MOTO_LOG=$SERVICES_DIR/moto.log
MARIADB_START_LOG=$SERVICES_DIR/mariadb-start.log

# The machine may point AWS_CA_BUNDLE at a CA file; everything here is plain
# http on loopback, and some clients choke on the variable, so drop it.
unset AWS_CA_BUNDLE

# ---------------------------------------------------------------- helpers

# Messages go to stderr so that `env` output stays eval-able.
log() { printf '[services] %s\n' "$*" >&2; }
die() {
  printf '[services] ERROR: %s\n' "$*" >&2
  exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif have sudo; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# Run a command as the `postgres` OS user (peer auth on the unix socket).
# cd / first so postgres is not left in a folder it cannot read.
as_postgres() {
  if [[ $EUID -eq 0 ]] && have runuser; then
    (cd / && runuser -u postgres -- "$@")
  elif have sudo; then
    (cd / && sudo -u postgres "$@")
  else
    die "need root (or sudo) to run as postgres: $*"
  fi
}

APT_UPDATED=0
apt_install() {
  have apt-get || die "apt-get not found; install manually: $*"
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# Is something accepting TCP connections on 127.0.0.1:PORT? Bounded by timeout.
port_open() {
  # shellcheck disable=SC2016 # $1 is expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# wait_for SECONDS DESCRIPTION LOGFILE COMMAND...  — poll COMMAND once a second.
wait_for() {
  local secs=$1 what=$2 logfile=$3
  shift 3
  local i
  for ((i = 0; i < secs; i++)); do
    if "$@"; then return 0; fi
    sleep 1
  done
  if [[ -f $logfile ]]; then
    log "last lines of $logfile:"
    tail -n 20 "$logfile" >&2 || true
  fi
  die "$what did not come up within ${secs}s; see $logfile"
}

# ---------------------------------------------------------------- MariaDB

mysql_tcp() {
  mariadb --protocol=tcp -h "$MYSQL_HOST" -P "$MYSQL_PORT" -uroot --connect-timeout=5 "$@"
}
mysql_tcp_ok() { mysql_tcp -e 'select 1' >/dev/null 2>&1; }
# Root over the unix socket: Debian's default root@localhost uses unix_socket auth.
mysql_socket() { as_root mariadb -uroot --connect-timeout=5 "$@"; }

mysql_up() {
  if port_open "$MYSQL_PORT"; then
    log "mariadb: something answers on $MYSQL_HOST:$MYSQL_PORT, reusing it"
  else
    if [[ ! -x /usr/sbin/mariadbd ]]; then
      apt_install mariadb-server mariadb-client
    fi
    mysql_start
  fi
  have mariadb || apt_install mariadb-client
  mysql_configure
}

mysql_start() {
  # Read the server's effective settings so we honour whatever my.cnf says.
  local datadir errlog
  datadir=$(my_print_defaults --mysqld | sed -n 's/^--datadir=//p' | tail -n 1)
  datadir=${datadir:-/var/lib/mysql}
  errlog=$(my_print_defaults --mysqld | sed -n 's/^--log[-_]error=//p' | tail -n 1)

  mkdir -p "$SERVICES_DIR" # holds the startup log below
  # /run is often a tmpfs, so the socket folder vanishes on reboot.
  as_root mkdir -p /run/mysqld
  as_root chown mysql:mysql /run/mysqld

  if [[ ! -d $datadir/mysql ]]; then
    log "mariadb: initialising empty data dir $datadir"
    as_root mkdir -p "$datadir"
    as_root chown mysql:mysql "$datadir"
    as_root mariadb-install-db --user=mysql --datadir="$datadir" >"$MARIADB_START_LOG" 2>&1 ||
      die "mariadb-install-db failed; see $MARIADB_START_LOG"
  fi

  log "mariadb: starting mariadbd"
  # --output catches anything mariadbd prints before its own error log is open.
  as_root start-stop-daemon --start --oknodo --background \
    --output "$MARIADB_START_LOG" \
    --exec /usr/sbin/mariadbd -- --user=mysql
  wait_for 60 "mariadb on $MYSQL_HOST:$MYSQL_PORT (early output in $MARIADB_START_LOG)" "${errlog:-$MARIADB_START_LOG}" \
    port_open "$MYSQL_PORT"
  log "mariadb: up${errlog:+ (error log: $errlog)}"
}

mysql_configure() {
  if ! mysql_tcp_ok; then
    # Typically a fresh Debian install: root may only log in via unix_socket.
    # Allow an empty password too, keeping socket auth for the OS root user.
    # root@127.0.0.1 covers servers running with skip-name-resolve.
    log "mariadb: enabling root login with empty password over TCP"
    mysql_socket -e "
      ALTER USER 'root'@'localhost'
        IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
      CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'
        IDENTIFIED VIA mysql_native_password USING PASSWORD('');
      GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
      FLUSH PRIVILEGES;" ||
      die "mariadb: could not reach the server as root over the unix socket to fix root's login"
    mysql_tcp_ok ||
      die "mariadb: root with an empty password still cannot log in on $MYSQL_HOST:$MYSQL_PORT"
  fi
  # local_infile: restores use LOAD DATA LOCAL INFILE. Not persisted across a
  # server restart, which is why every `up` sets it again.
  mysql_tcp -e "CREATE DATABASE IF NOT EXISTS test; SET GLOBAL local_infile = 1;" ||
    die "mariadb: could not create database test / enable local_infile"
  log "mariadb: ready (root@$MYSQL_HOST:$MYSQL_PORT, database test, local_infile=1)"
}

# ---------------------------------------------------------------- PostgreSQL

pg_ready() {
  if have pg_isready; then
    pg_isready -q -t 2 -h "$PG_HOST" -p "$PG_PORT"
  else
    port_open "$PG_PORT"
  fi
}

# First installed cluster version (Debian layout: /etc/postgresql/<ver>/main).
pg_version() {
  local d
  for d in /etc/postgresql/*/main; do
    [[ -d $d ]] || continue
    d=${d%/main}
    printf '%s\n' "${d##*/}"
    return 0
  done
  return 1
}

pg_up() {
  if pg_ready; then
    log "postgresql: something answers on $PG_HOST:$PG_PORT, reusing it"
  else
    if ! have pg_ctlcluster || [[ -z $(pg_version) ]]; then
      apt_install postgresql postgresql-client
    fi
    local ver
    ver=$(pg_version) || die "postgresql: no cluster under /etc/postgresql after install"
    local pglog=/var/log/postgresql/postgresql-$ver-main.log
    log "postgresql: starting cluster $ver/main"
    # --skip-systemctl-redirect: there is no systemd in containers/CI.
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start ||
      die "postgresql: pg_ctlcluster failed; see $pglog"
    wait_for 30 "postgresql on $PG_HOST:$PG_PORT" "$pglog" pg_ready
  fi
  have psql || apt_install postgresql-client
  pg_configure
}

# Run SQL as a superuser: prefer the postgres OS user over the socket (works
# whatever pg_hba says for TCP); fall back to TCP when we cannot become postgres.
pg_sql() {
  if { [[ $EUID -eq 0 ]] || have sudo; } && id postgres >/dev/null 2>&1; then
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -At "$@"
  else
    psql -X -q -v ON_ERROR_STOP=1 -At -h "$PG_HOST" -p "$PG_PORT" -U postgres -w "$@"
  fi
}

pg_configure() {
  local hba
  hba=$(pg_sql -c 'SHOW hba_file') || die "postgresql: cannot connect as superuser to read hba_file"

  # Trust for loopback TCP. pg_hba is first-match, so our lines go on top;
  # only touch the file when a trust line for that address is missing.
  local addr missing=()
  for addr in 127.0.0.1/32 ::1/128; do
    if ! as_root grep -Eq "^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+${addr//./\\.}[[:space:]]+trust" "$hba"; then
      missing+=("$addr")
    fi
  done
  if ((${#missing[@]})); then
    log "postgresql: adding trust for ${missing[*]} to $hba"
    local tmp
    tmp=$(mktemp)
    {
      echo "# added by kfguard scripts/services.sh: trust loopback TCP for tests"
      for addr in "${missing[@]}"; do
        printf 'host all all %s trust\n' "$addr"
      done
      as_root cat "$hba"
    } >"$tmp"
    # Writing into the existing file keeps its owner and mode.
    as_root tee "$hba" <"$tmp" >/dev/null
    rm -f "$tmp"
    pg_sql -c 'SELECT pg_reload_conf()' >/dev/null
  fi

  pg_sql -c "DO \$\$BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'root') THEN
        CREATE ROLE root SUPERUSER LOGIN;
      END IF;
    END\$\$;" || die "postgresql: could not create role root"
  local db
  for db in test root; do
    if [[ -z $(pg_sql -c "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
      log "postgresql: creating database $db"
      pg_sql -c "CREATE DATABASE \"$db\"" || die "postgresql: could not create database $db"
    fi
  done

  psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -w -d test -c 'select 1' >/dev/null ||
    die "postgresql: user postgres cannot log in without a password on $PG_HOST:$PG_PORT (check $hba)"
  log "postgresql: ready (postgres@$PG_HOST:$PG_PORT, role root, databases test and root)"
}

# ---------------------------------------------------------------- S3 (moto)

s3_url() { printf 'http://127.0.0.1:%s' "$S3_PORT"; }

# Any HTTP answer counts (moto answers / with a ListBuckets document).
s3_ready() {
  local code
  code=$(curl --noproxy '*' -s -o /dev/null -m 3 -w '%{http_code}' "$(s3_url)/" 2>/dev/null) || true
  [[ -n $code && $code != 000 ]]
}

# pid of the moto we started, if it is still alive.
moto_pid() {
  [[ -f $MOTO_PID ]] || return 1
  local pid
  pid=$(<"$MOTO_PID")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  # Guard against pid reuse: make sure it is still moto.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q moto_server || return 1
  printf '%s\n' "$pid"
}

moto_install() {
  if [[ -x $VENV/bin/moto_server ]] && "$VENV/bin/python" -c 'import moto' 2>/dev/null; then
    return 0
  fi
  have python3 || apt_install python3 python3-venv
  log "s3: installing moto[server] into $VENV"
  mkdir -p "$SERVICES_DIR"
  # Recreate rather than repair: a half-built or stale venv is cheap to redo.
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 ships venv separately.
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q 'moto[server]' ||
    die "s3: pip install 'moto[server]' into $VENV failed"
}

s3_up() {
  if s3_ready; then
    if moto_pid >/dev/null; then
      log "s3: our moto already answers on $(s3_url), reusing it"
    else
      log "s3: something already answers on $(s3_url), reusing it"
    fi
    return 0
  fi
  moto_install
  mkdir -p "$SERVICES_DIR"
  log "s3: starting moto_server on $(s3_url) (log: $MOTO_LOG)"
  # setsid detaches moto from our terminal/process group so it outlives this
  # script; the inner shell records its own pid, which exec hands to moto.
  # shellcheck disable=SC2016 # $$, $1 and $@ are expanded by the inner bash
  nohup setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$MOTO_PID" \
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" \
    </dev/null >>"$MOTO_LOG" 2>&1 &
  local i
  for ((i = 0; i < 30; i++)); do
    if s3_ready; then
      log "s3: ready on $(s3_url) (pid $(cat "$MOTO_PID"))"
      return 0
    fi
    # Fail fast if moto died (port clash, broken install, ...).
    if ((i >= 2)) && ! moto_pid >/dev/null; then
      log "last lines of $MOTO_LOG:"
      tail -n 20 "$MOTO_LOG" >&2 || true
      die "s3: moto_server exited during startup; see $MOTO_LOG"
    fi
    sleep 1
  done
  log "last lines of $MOTO_LOG:"
  tail -n 20 "$MOTO_LOG" >&2 || true
  die "s3: moto_server did not answer on $(s3_url) within 30s; see $MOTO_LOG"
}

s3_down() {
  local pid
  if ! pid=$(moto_pid); then
    log "s3: no moto started by this script is running"
    rm -f "$MOTO_PID"
    return 0
  fi
  log "s3: stopping moto (pid $pid)"
  kill "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "s3: moto did not stop within 10s, killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$MOTO_PID"
}

# ---------------------------------------------------------------- restic

restic_up() {
  if have restic; then
    log "restic: $(restic version 2>/dev/null | head -n 1)"
  else
    apt_install restic
  fi
}

# ---------------------------------------------------------------- kubectl

kubectl_up() {
  if have kubectl; then
    log "kubectl: $(kubectl version --client 2>/dev/null | head -n 1)"
  else
    apt_install kubernetes-client
  fi
}

# ---------------------------------------------------------------- promtool

# Debian's `prometheus` package ships `promtool`, which the tests use to check and unit-test the
# alert rules in deploy/monitoring/. Only the tool is wanted: policy-rc.d keeps the package's
# postinst from starting the prometheus daemon, and a daemon started anyway is stopped.
promtool_up() {
  if have promtool; then
    log "promtool: $(promtool --version 2>&1 | head -n 1)"
    return
  fi
  local guard=/usr/sbin/policy-rc.d placed=0
  if [[ ! -e $guard ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$guard" >/dev/null
    as_root chmod 0755 "$guard"
    placed=1
  fi
  apt_install --no-install-recommends prometheus
  if [[ $placed -eq 1 ]]; then as_root rm -f "$guard"; fi
  if have systemctl && systemctl is-active --quiet prometheus 2>/dev/null; then
    as_root systemctl disable --now prometheus || true
  fi
  if have service && service prometheus status >/dev/null 2>&1; then
    as_root service prometheus stop || true
  fi
}

# ---------------------------------------------------------------- chromium

# Debian's chromium: headless, it loads the drill report (`runbook run --report-html`) in tests.
chromium_up() {
  if have chromium; then
    log "chromium: $(chromium --version 2>/dev/null | head -n 1)"
  else
    apt_install chromium
  fi
}

# ---------------------------------------------------------------- commands

cmd_up() {
  mysql_up
  pg_up
  s3_up
  restic_up
  kubectl_up
  promtool_up
  chromium_up
  log "all services up; for the tests: eval \"\$($0 env)\""
}

cmd_down() {
  s3_down
  log "mariadb and postgresql are system services and are left running"
}

cmd_env() {
  cat <<EOF
export KFGUARD_TEST_MYSQL_URL=mysql://root@$MYSQL_HOST:$MYSQL_PORT
export KFGUARD_TEST_PG_URL=postgres://postgres@$PG_HOST:$PG_PORT
export KFGUARD_TEST_S3_ENDPOINT=$(s3_url)
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
EOF
}

cmd_status() {
  local down=0 line
  status_line() { # name up|down detail
    printf '%-11s %-5s %s\n' "$1" "$2" "$3"
    [[ $2 == up ]] || down=1
  }
  if port_open "$MYSQL_PORT"; then line=up; else line=down; fi
  status_line mariadb "$line" "$MYSQL_HOST:$MYSQL_PORT"
  if pg_ready; then line=up; else line=down; fi
  status_line postgresql "$line" "$PG_HOST:$PG_PORT"
  local pid owner="not started by this script"
  if pid=$(moto_pid); then owner="moto pid $pid"; fi
  if s3_ready; then line=up; else line=down; fi
  status_line s3 "$line" "$(s3_url) ($owner)"
  if have restic; then line=up; else line=down; fi
  status_line restic "$line" "$(command -v restic || echo 'not installed')"
  if have kubectl; then line=up; else line=down; fi
  status_line kubectl "$line" "$(command -v kubectl || echo 'not installed')"
  if have promtool; then line=up; else line=down; fi
  status_line promtool "$line" "$(command -v promtool || echo 'not installed')"
  if have chromium; then line=up; else line=down; fi
  status_line chromium "$line" "$(command -v chromium || echo 'not installed')"
  return "$down"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up|down|env|status" >&2
    exit 2
    ;;
esac
