#!/usr/bin/env bash
# kfguard database backup/restore vs the usual cron pipelines, side by side in one run:
#   mysqldump --single-transaction --quick | restic backup --stdin     and  restic dump | mariadb
#   pg_dump | restic backup --stdin                                   and  restic dump | psql
# on a KFP-like dataset of about SIZE_MIB per engine, generated inside the servers.
# Reports median wall time of RUNS runs (each into fresh repositories, same password), the
# ratio kfguard/peer, peak RSS, repository bytes, and the bytes added by a second and a third
# backup after 1% of the rows changed (the newest 1%, then every 100th row).
#
# Needs MariaDB on 127.0.0.1:3306 (root, no password) and PostgreSQL on 127.0.0.1:5432
# (user postgres, trust): run `scripts/services.sh up` first.
#
# Usage: bench/databases.sh [SIZE_MIB=1024] [RUNS=3]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MIB=${1:-1024}
RUNS=${2:-3}
JOBS=${KFGUARD_BENCH_JOBS:-4}
DB=benchdb
KDB=benchdb_kfguard # restore targets
RDB=benchdb_restic
unset AWS_CA_BUNDLE
export PGOPTIONS="-c client_min_messages=warning"

need() { command -v "$1" >/dev/null || { echo "bench: $1 is missing ($2)" >&2; exit 1; }; }
need restic "apt-get install restic"
need mysqldump "apt-get install mariadb-client"
need pg_dump "apt-get install postgresql-client"
need psql "apt-get install postgresql-client"
[[ -x /usr/bin/time ]] || { echo "bench: GNU time is missing (apt-get install time)" >&2; exit 1; }
if command -v mariadb >/dev/null; then MYSQL=mariadb; else need mysql "apt-get install mariadb-client"; MYSQL=mysql; fi

my() { "$MYSQL" -h127.0.0.1 -P3306 -uroot --batch --skip-column-names "$@"; }
pg() { psql -h 127.0.0.1 -p 5432 -U postgres -v ON_ERROR_STOP=1 -q -X -At "$@"; }
export MY_ARGS="-h127.0.0.1 -P3306 -uroot" PG_ARGS="-h 127.0.0.1 -p 5432 -U postgres"
my -e 'SELECT 1' >/dev/null || { echo "bench: MariaDB is not reachable on 127.0.0.1:3306 as root (scripts/services.sh up)" >&2; exit 1; }
pg -d postgres -c 'SELECT 1' >/dev/null || { echo "bench: PostgreSQL is not reachable on 127.0.0.1:5432 as postgres (scripts/services.sh up)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kfguard-dbbench.XXXXXX")
drop_all() {
  for d in "$DB" "$KDB" "$RDB"; do
    my -e "DROP DATABASE IF EXISTS \`$d\`" 2>/dev/null || true
    pg -d postgres -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" 2>/dev/null || true
  done
}
cleanup() { drop_all; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$REPO" && cargo build --release --quiet)
# Benchmark a copy, so that a concurrent `cargo build` cannot swap the binary mid-run.
cp "${CARGO_TARGET_DIR:-$REPO/target}/release/kfguard" "$WORK/kfguard"
KFGUARD=$WORK/kfguard
BUILT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -z $(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]] || BUILT+=" + uncommitted changes"
START=$SECONDS

# ------------------------------------------------------------------ dataset
# Byte budget per engine: 40% manifests (100 KiB-1 MiB of JSON-like text each), 45% small rows
# (MLMD-like Event, ArtifactProperty, Execution), 15% incompressible blobs (64-255 KiB each).
T=$((SIZE_MIB * 1048576))
UNIT=300                                  # bytes of one manifest step, about
MAN=$((T * 40 / 100 / (2200 * UNIT))); ((MAN > 0)) || MAN=1
BLOB=$((T * 15 / 100 / (160 * 1024))); ((BLOB > 0)) || BLOB=1
EV=$((T * 15 / 100 / 45))                 # Event rows (about 45 bytes of dump each)
ART=$((T * 15 / 100 / 75 / 4))            # artifacts, 4 ArtifactProperty rows each
EX=$((T * 15 / 100 / 110))                # Execution rows
MAN1=$((MAN / 100)); ((MAN1 > 0)) || MAN1=1

drop_all
echo "bench: generating ~${SIZE_MIB} MiB per engine in database $DB" \
  "($MAN manifests, $EV events, $((ART * 4)) artifact properties, $EX executions, $BLOB blobs)" >&2

gen_mysql() {
  my >/dev/null <<SQL
SET SESSION group_concat_max_len = 16777216;
CREATE DATABASE $DB CHARACTER SET utf8mb4;
USE $DB;
CREATE TABLE run_details (
  id BIGINT PRIMARY KEY, uuid CHAR(36) NOT NULL, display_name VARCHAR(255) NOT NULL,
  created_at_sec BIGINT NOT NULL, conditions VARCHAR(125) NOT NULL,
  workflow_runtime_manifest LONGTEXT NOT NULL);
CREATE TABLE Event (
  id BIGINT PRIMARY KEY, artifact_id INT NOT NULL, execution_id INT NOT NULL,
  type TINYINT NOT NULL, milestone_time BIGINT, KEY idx_event_execution (execution_id));
CREATE TABLE ArtifactProperty (
  artifact_id INT NOT NULL, name VARCHAR(255) NOT NULL, is_custom_property TINYINT(1) NOT NULL,
  int_value INT, double_value DOUBLE, string_value MEDIUMTEXT,
  PRIMARY KEY (artifact_id, name, is_custom_property));
CREATE TABLE Execution (
  id INT PRIMARY KEY, type_id INT NOT NULL, last_known_state INT, name VARCHAR(255),
  create_time_since_epoch BIGINT NOT NULL, last_update_time_since_epoch BIGINT NOT NULL,
  cost DOUBLE, updated_at DATETIME(6), KEY idx_execution_type (type_id));
CREATE TABLE artifact_blobs (
  id BIGINT PRIMARY KEY, artifact_id INT NOT NULL, proto_value MEDIUMBLOB NOT NULL);

INSERT INTO run_details
SELECT r.seq, UUID(), CONCAT('training-pipeline-run-', r.seq), 1700000000 + r.seq * 3600, 'Succeeded',
  CONCAT('{"kind":"Workflow","metadata":{"name":"run-', r.seq, '"},"spec":{"steps":[',
    (SELECT GROUP_CONCAT(CONCAT('{"name":"step-', s.seq,
       '","image":"gcr.io/ml-pipeline/trainer:v2.', s.seq MOD 17,
       '","args":["--input","gs://kfp-artifacts/', MD5(RAND()), '/data.csv","--learning-rate","',
       ROUND(RAND(), 6), '"],"status":{"phase":"Succeeded","startedAt":"2024-05-',
       LPAD(1 + s.seq MOD 28, 2, '0'), 'T10:', LPAD(s.seq MOD 60, 2, '0'),
       ':00Z","podName":"pipeline-', LEFT(MD5(RAND()), 10), '"}}') SEPARATOR ',')
     FROM seq_1_to_4000 s WHERE s.seq <= 400 + (r.seq * 7919) MOD 3600),
    ']}}')
FROM seq_1_to_$MAN r;
INSERT INTO Event SELECT seq, seq DIV 2, seq DIV 3, 1 + seq MOD 6, 1700000000000 + seq * 500
FROM seq_1_to_$EV;
INSERT INTO ArtifactProperty
SELECT 1 + (seq - 1) DIV 4, ELT(1 + seq MOD 4, 'uri', 'display_name', 'accuracy', 'state'),
  seq MOD 2, seq MOD 1000, RAND(), CONCAT('gs://kfp-artifacts/', LEFT(MD5(seq), 12))
FROM seq_1_to_$((ART * 4));
INSERT INTO Execution
SELECT seq, 1 + seq MOD 13, seq MOD 5, CONCAT('run-', LEFT(MD5(seq), 8), '-step-', seq MOD 40),
  1700000000000 + seq * 1000, 1700000000000 + seq * 1000 + 60000, RAND() * 100,
  TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND + INTERVAL (seq MOD 1000000) MICROSECOND
FROM seq_1_to_$EX;
INSERT INTO artifact_blobs
SELECT r.seq, r.seq * 7,
  (SELECT GROUP_CONCAT(RANDOM_BYTES(1024) SEPARATOR '') FROM seq_1_to_256 s
   WHERE s.seq <= 64 + (r.seq * 31) MOD 192)
FROM seq_1_to_$BLOB r;
ANALYZE TABLE run_details, Event, ArtifactProperty, Execution, artifact_blobs;
SQL
}

gen_pg() {
  pg -d postgres -c "CREATE DATABASE $DB"
  pg -d "$DB" <<SQL >/dev/null
CREATE TABLE run_details (
  id bigint PRIMARY KEY, uuid uuid NOT NULL, display_name varchar(255) NOT NULL,
  created_at_sec bigint NOT NULL, conditions varchar(125) NOT NULL,
  workflow_runtime_manifest text NOT NULL);
CREATE TABLE "Event" (
  id bigint PRIMARY KEY, artifact_id int NOT NULL, execution_id int NOT NULL,
  type smallint NOT NULL, milestone_time bigint);
CREATE TABLE "ArtifactProperty" (
  artifact_id int NOT NULL, name varchar(255) NOT NULL, is_custom_property boolean NOT NULL,
  int_value int, double_value double precision, string_value text,
  PRIMARY KEY (artifact_id, name, is_custom_property));
CREATE TABLE "Execution" (
  id int PRIMARY KEY, type_id int NOT NULL, last_known_state int, name varchar(255),
  create_time_since_epoch bigint NOT NULL, last_update_time_since_epoch bigint NOT NULL,
  cost double precision, updated_at timestamptz);
CREATE TABLE artifact_blobs (id bigint PRIMARY KEY, artifact_id int NOT NULL, proto_value bytea NOT NULL);

INSERT INTO run_details
SELECT r, gen_random_uuid(), 'training-pipeline-run-' || r, 1700000000 + r * 3600, 'Succeeded',
  '{"kind":"Workflow","metadata":{"name":"run-' || r || '"},"spec":{"steps":[' ||
  (SELECT string_agg(format('{"name":"step-%s","image":"gcr.io/ml-pipeline/trainer:v2.%s",'
       '"args":["--input","gs://kfp-artifacts/%s/data.csv","--learning-rate","%s"],'
       '"status":{"phase":"Succeeded","startedAt":"2024-05-%sT10:%s:00Z","podName":"pipeline-%s"}}',
       s, s % 17, md5(random()::text), round(random()::numeric, 6),
       lpad((1 + s % 28)::text, 2, '0'), lpad((s % 60)::text, 2, '0'), left(md5(random()::text), 10)), ',')
   FROM generate_series(1, 400 + (r * 7919) % 3600) s) || ']}}'
FROM generate_series(1, $MAN::bigint) r;
INSERT INTO "Event" SELECT s, s / 2, s / 3, 1 + s % 6, 1700000000000 + s * 500 FROM generate_series(1, $EV::bigint) s;
CREATE INDEX idx_event_execution ON "Event" (execution_id);
INSERT INTO "ArtifactProperty"
SELECT 1 + (s - 1) / 4, (ARRAY['uri', 'display_name', 'accuracy', 'state'])[1 + (s % 4)::int], s % 2 = 1,
  s % 1000, random(), 'gs://kfp-artifacts/' || left(md5(s::text), 12)
FROM generate_series(1, $((ART * 4))::bigint) s;
INSERT INTO "Execution"
SELECT s, 1 + s % 13, s % 5, 'run-' || left(md5(s::text), 8) || '-step-' || s % 40,
  1700000000000 + s * 1000, 1700000000000 + s * 1000 + 60000, random() * 100,
  timestamptz '2024-01-01 00:00:00+00' + s * interval '1 second' + (s % 1000000) * interval '1 microsecond'
FROM generate_series(1, $EX::bigint) s;
CREATE INDEX idx_execution_type ON "Execution" (type_id);
INSERT INTO artifact_blobs
SELECT r, r * 7,
  (SELECT decode(string_agg(md5(random()::text || s), ''), 'hex')
   FROM generate_series(1, (64 + (r * 31) % 192) * 64) s)
FROM generate_series(1, $BLOB::bigint) r;
SQL
  pg -d "$DB" -c 'VACUUM (FREEZE, ANALYZE)'
}

# change1 ENGINE WHERE-KIND: an UPDATE of 1% of the rows of every table but the blobs, either the
# newest 1% by key (what a nightly KFP/MLMD workload touches) or every 100th row (scattered).
change1() {
  local engine=$1 kind=$2 ev ex art man q
  if [[ $kind == newest ]]; then
    ev="id > $((EV - EV / 100))" ex="id > $((EX - EX / 100))"
    art="artifact_id > $((ART - ART / 100))" man="id > $((MAN - MAN1))"
  else
    ev="id % 100 = 1" ex="id % 100 = 1" art="artifact_id % 100 = 1" man="id % 100 = 1"
  fi
  q='"'; [[ $engine == mysql ]] && q='`'
  local sql="
UPDATE ${q}Event${q} SET milestone_time = milestone_time + 1 WHERE $ev;
UPDATE ${q}Execution${q} SET last_known_state = 4, last_update_time_since_epoch = last_update_time_since_epoch + 60000 WHERE $ex;
UPDATE ${q}ArtifactProperty${q} SET double_value = double_value + 0.5 WHERE $art;
UPDATE run_details SET conditions = 'Failed',
  workflow_runtime_manifest = REPLACE(workflow_runtime_manifest, '\"phase\":\"Succeeded\"', '\"phase\":\"Failed\"') WHERE $man;"
  if [[ $engine == mysql ]]; then
    my "$DB" <<<"$sql"
  else
    pg -d "$DB" <<<"$sql"
    pg -d "$DB" -c 'VACUUM (FREEZE, ANALYZE)'
  fi
}

t0=$SECONDS
gen_mysql
echo "bench: MariaDB dataset generated in $((SECONDS - t0)) s" >&2
t0=$SECONDS
gen_pg
echo "bench: PostgreSQL dataset generated in $((SECONDS - t0)) s" >&2

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
{
  echo "MariaDB $DB (rows, on-disk data+index MiB from information_schema):"
  my -e "SELECT CONCAT('  ', t.table_name, ' ', c.n, ' rows, ', ROUND((t.data_length + t.index_length) / 1048576, 1), ' MiB')
    FROM information_schema.tables t JOIN (
      SELECT 'run_details' tn, COUNT(*) n FROM $DB.run_details UNION ALL SELECT 'Event', COUNT(*) FROM $DB.Event
      UNION ALL SELECT 'ArtifactProperty', COUNT(*) FROM $DB.ArtifactProperty
      UNION ALL SELECT 'Execution', COUNT(*) FROM $DB.Execution
      UNION ALL SELECT 'artifact_blobs', COUNT(*) FROM $DB.artifact_blobs) c ON c.tn = t.table_name
    WHERE t.table_schema = '$DB' ORDER BY t.table_name"
  my -e "SELECT CONCAT('  total ', ROUND(SUM(data_length + index_length) / 1048576, 1), ' MiB on disk; manifests ',
      (SELECT ROUND(SUM(LENGTH(workflow_runtime_manifest)) / 1048576, 1) FROM $DB.run_details), ' MiB of text, blobs ',
      (SELECT ROUND(SUM(LENGTH(proto_value)) / 1048576, 1) FROM $DB.artifact_blobs), ' MiB')
    FROM information_schema.tables WHERE table_schema = '$DB'"
  echo "PostgreSQL $DB (rows, pg_total_relation_size MiB):"
  pg -d "$DB" -c "SELECT '  ' || c.relname || ' ' || (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I', c.relname), false, true, '')))[1]::text
      || ' rows, ' || round(pg_total_relation_size(c.oid) / 1048576.0, 1) || ' MiB'
    FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY c.relname"
  pg -d "$DB" -c "SELECT '  pg_database_size ' || round(pg_database_size('$DB') / 1048576.0, 1) || ' MiB; manifests '
      || (SELECT round(sum(length(workflow_runtime_manifest)) / 1048576.0, 1) FROM run_details) || ' MiB of text, blobs '
      || (SELECT round(sum(length(proto_value)) / 1048576.0, 1) FROM artifact_blobs) || ' MiB'"
} | tee "$WORK/dataset.txt" >&2

# ------------------------------------------------------------------ harness
echo "password-for-bench" >"$WORK/password"
export KFGUARD_PASSWORD_FILE=$WORK/password RESTIC_PASSWORD_FILE=$WORK/password
export RESTIC_CACHE_DIR=$WORK/restic-cache KFGUARD_QUIET=true
for engine in mysql postgres; do
  if [[ $engine == mysql ]]; then url=mysql://root@127.0.0.1:3306; else url=postgres://postgres@127.0.0.1:5432; fi
  cat >"$WORK/$engine.toml" <<TOML
[repository]
url = "$WORK/k-$engine"

[[databases]]
name = "kfp"
engine = "$engine"
url = "$url"
databases = ["$DB"]
TOML
done

# Server CPU seconds so far: mariadbd's threads, and the postmaster with its exited backends.
CLK_TCK=$(getconf CLK_TCK)
MYSQLD_PID=$(pidof -s mariadbd || pidof -s mysqld || true)
PG_PID=$(head -1 "$(pg -d postgres -c 'SHOW data_directory')/postmaster.pid" 2>/dev/null || pgrep -o -x postgres || true)
server_cpu() {
  local pid=$MYSQLD_PID
  [[ $1 == postgres ]] && pid=$PG_PID
  [[ -n $pid && -r /proc/$pid/stat ]] || { echo 0; return; }
  awk -v hz="$CLK_TCK" '{ printf "%.2f", ($14 + $15 + $16 + $17) / hz }' "/proc/$pid/stat"
}

# settle ENGINE: wait until the op's PostgreSQL backends have exited and been reaped (their CPU
# only reaches the postmaster's counters then, up to a second after the client exits).
settle() {
  [[ $1 == postgres ]] || return 0
  local n
  for n in $(seq 40); do
    [[ $(pg -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
      AND pid <> pg_backend_pid() AND datname IN ('$DB', '$KDB', '$RDB')") == 0 ]] && break
    sleep 0.25
  done
  sleep 1
}

# run LABEL ENGINE OKCODES CMD... : appends "wall_s max_rss_kib user_s sys_s server_cpu_s"
# to $WORK/LABEL.times
run() {
  local label=$1 engine=$2 ok=$3 rc=0 c0 t
  shift 3
  c0=$(server_cpu "$engine")
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.out" "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" || rc=$?
  if [[ " $ok " != *" $rc "* ]]; then
    echo "bench: $label failed (exit $rc):" >&2
    tail -5 "$WORK/$label.err" >&2
    exit 1
  fi
  settle "$engine"
  t="$(tail -1 "$WORK/time.out") $(awk -v a="$c0" -v b="$(server_cpu "$engine")" 'BEGIN { printf "%.2f", b - a }')"
  echo "$t" >>"$WORK/$label.times"
  read -r wall kib user sys srv <<<"$t"
  printf 'bench: %s %-28s %8s s %6s MiB  cpu: client %6.1f s, server %6.1f s\n' \
    "$(date +%T)" "$label" "$wall" "$((kib / 1024))" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$srv" >&2
}

kf() { KFGUARD_CONFIG=$WORK/$1.toml "$KFGUARD" "${@:2}"; }
rs() { RESTIC_REPOSITORY=$WORK/r-$1 restic "${@:2}"; }

backup_k() { run "k-$1-backup$2" "$1" "0 3" env KFGUARD_CONFIG="$WORK/$1.toml" "$KFGUARD" -q backup --only databases --jobs "$JOBS"; }
backup_r() {
  local dump
  if [[ $1 == mysql ]]; then dump="mysqldump $MY_ARGS --single-transaction --quick $DB"; else dump="pg_dump $PG_ARGS $DB"; fi
  run "r-$1-backup$2" "$1" 0 env RESTIC_REPOSITORY="$WORK/r-$1" \
    bash -c "set -o pipefail; $dump | restic -q backup --stdin --stdin-filename $DB.sql"
}
restore_k() {
  drop_target "$1" "$KDB"
  run "k-$1-restore" "$1" "0 3" env KFGUARD_CONFIG="$WORK/$1.toml" "$KFGUARD" -q restore latest --only databases \
    --database "kfp/$DB" --into "$KDB" --jobs "$JOBS"
}
restore_r() {
  drop_target "$1" "$RDB"
  if [[ $1 == mysql ]]; then
    my -e "CREATE DATABASE $RDB CHARACTER SET utf8mb4"
    run "r-$1-restore" "$1" 0 env RESTIC_REPOSITORY="$WORK/r-$1" \
      bash -c "set -o pipefail; restic -q dump latest $DB.sql | $MYSQL $MY_ARGS $RDB"
  else
    pg -d postgres -c "CREATE DATABASE $RDB"
    run "r-$1-restore" "$1" 0 env RESTIC_REPOSITORY="$WORK/r-$1" \
      bash -c "set -o pipefail; restic -q dump latest $DB.sql | psql $PG_ARGS -X -q -v ON_ERROR_STOP=1 $RDB >/dev/null"
  fi
}
drop_target() {
  if [[ $1 == mysql ]]; then my -e "DROP DATABASE IF EXISTS $2"
  else pg -d postgres -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)"; fi
}
# counts ENGINE DB: the row count of every table, one line
counts() {
  local t out=""
  for t in run_details Event ArtifactProperty Execution artifact_blobs; do
    if [[ $1 == mysql ]]; then out+="$t=$(my -e "SELECT COUNT(*) FROM $2.$t") "
    else out+="$t=$(pg -d "$2" -c "SELECT count(*) FROM \"$t\"") "; fi
  done
  echo "$out"
}
bytes() { du -sb "$1" | cut -f1; }

for i in $(seq "$RUNS"); do
  echo "bench: run $i/$RUNS ($((SECONDS - START)) s elapsed)" >&2
  for engine in mysql postgres; do
    rm -rf "$WORK/k-$engine" "$WORK/r-$engine" "$RESTIC_CACHE_DIR"
    kf "$engine" -q init >/dev/null
    rs "$engine" init -q >/dev/null
    # alternate who goes first, so neither always gets the warmer cache
    if ((i % 2)); then backup_k "$engine" ""; backup_r "$engine" ""; restore_k "$engine"; restore_r "$engine"
    else backup_r "$engine" ""; backup_k "$engine" ""; restore_r "$engine"; restore_k "$engine"; fi
    if ((i == 1)); then
      src=$(counts "$engine" "$DB")
      for d in "$KDB" "$RDB"; do
        got=$(counts "$engine" "$d")
        [[ $got == "$src" ]] || { echo "bench: $engine restore into $d has rows $got, source has $src" >&2; exit 1; }
      done
      echo "bench:   $engine restores hold the source's row counts: $src" >&2
      rs "$engine" stats latest --mode restore-size --json | sed 's/.*"total_size":\([0-9]*\).*/\1/' >"$WORK/$engine.dumpsize"
    fi
    drop_target "$engine" "$KDB"
    drop_target "$engine" "$RDB"
  done
done

# Repository sizes after the last run's first backup, then two more nights on those repositories.
for engine in mysql postgres; do
  for tool in k r; do bytes "$WORK/$tool-$engine" >"$WORK/$tool-$engine.size1"; done
done
for night in newest scattered; do
  echo "bench: changing 1% of rows ($night) and backing up again ($((SECONDS - START)) s elapsed)" >&2
  for engine in mysql postgres; do
    change1 "$engine" "$night"
    for tool in k r; do
      before=$(bytes "$WORK/$tool-$engine")
      "backup_$tool" "$engine" "-$night"
      echo $(($(bytes "$WORK/$tool-$engine") - before)) >"$WORK/$tool-$engine.added-$night"
    done
  done
done

# ------------------------------------------------------------------ report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
secs() { cut -d' ' -f1 "$WORK/$1.times" | median; }
rss() { echo $(($(cut -d' ' -f2 "$WORK/$1.times" | sort -n | tail -1) / 1024)); }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "met" : "MISSED" }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", (b > 0) ? 100 * a / b : 0 }'; }
row() { printf '%-38s %12s %12s %7s %12s  %s\n' "$@"; }
col() { awk -v c="$2" '{ print (c == "cpu") ? $3 + $4 : $5 }' "$WORK/$1.times" | median | xargs printf "%.2f"; }

printf '\n%s MiB per engine, %s runs (median), kfguard --jobs %s (built from %s), %s, %s s in all\n' \
  "$SIZE_MIB" "$RUNS" "$JOBS" "$BUILT" "$(restic version | cut -d' ' -f1-2)" "$((SECONDS - START))"
cat "$WORK/dataset.txt"
printf 'plain dumps: mysqldump %s MiB, pg_dump %s MiB\n\n' "$(mib "$(cat "$WORK/mysql.dumpsize")")" "$(mib "$(cat "$WORK/postgres.dumpsize")")"
row "" kfguard peer ratio target ""
for op in backup restore; do
  for engine in mysql postgres; do
    case $engine-$op in
      mysql-backup) t=0.7 ;; postgres-backup) t=0.8 ;; mysql-restore) t=0.5 ;; postgres-restore) t=0.7 ;;
    esac
    k=$(secs "k-$engine-$op") r=$(secs "r-$engine-$op")
    row "$engine $op (s)" "$k" "$r" "$(ratio "$k" "$r")" "<= ${t}x" "$(verdict "$(ratio "$k" "$r")" "$t")"
  done
done
for op in backup restore; do
  for engine in mysql postgres; do
    k=$(rss "k-$engine-$op") r=$(rss "r-$engine-$op")
    row "peak RSS, $engine $op (MiB)" "$k" "$r" "$(ratio "$k" "$r")" "<= 300 MiB" "$(verdict "$k" 300)"
  done
done
for engine in mysql postgres; do
  k=$(cat "$WORK/k-$engine.size1") r=$(cat "$WORK/r-$engine.size1")
  row "repository, $engine (MiB)" "$(mib "$k")" "$(mib "$r")" "$(ratio "$k" "$r")" "" ""
done
for night in newest scattered; do
  for engine in mysql postgres; do
    k=$(cat "$WORK/k-$engine.added-$night") r=$(cat "$WORK/r-$engine.added-$night")
    k1=$(cat "$WORK/k-$engine.size1") r1=$(cat "$WORK/r-$engine.size1")
    row "1% $night changed, $engine (MiB)" "$(mib "$k")" "$(mib "$r")" "$(ratio "$k" "$r")" "" ""
    row "  as % of the first backup" "$(pct "$k" "$k1")" "$(pct "$r" "$r1")" "" "<= 5%" \
      "$(verdict "$(awk -v a="$k" -v b="$k1" 'BEGIN { print 100 * a / b }')" 5)"
  done
done
printf '\nwhere the time goes (median seconds: wall; client CPU = user+sys of kfguard or of the whole\n'
printf 'pipeline; server CPU = all of mariadbd, or the postgres backends that exited, so it leaves out\n'
printf 'the checkpointer and counts any other client of the shared server; 2 cores, so wall >= CPU / 2):\n'
printf '%-22s %28s   %28s\n' "" "kfguard wall/client/server" "peer wall/client/server"
for op in backup restore; do
  for engine in mysql postgres; do
    printf '%-22s %28s   %28s\n' "$engine $op" \
      "$(secs "k-$engine-$op") / $(col "k-$engine-$op" cpu) / $(col "k-$engine-$op" srv)" \
      "$(secs "r-$engine-$op") / $(col "r-$engine-$op" cpu) / $(col "r-$engine-$op" srv)"
  done
done
printf '\npeer = mysqldump --single-transaction --quick | restic backup --stdin, restic dump | %s;\n' "$MYSQL"
printf '       pg_dump | restic backup --stdin, restic dump | psql.\n'
printf 'A pipeline'"'"'s peak RSS is that of its largest process.\n'
printf 'kfguard restore includes its checksum verification; the peer restores are not verified.\n'
