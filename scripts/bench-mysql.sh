#!/usr/bin/env bash
# Benchmark: amlmigrate backup/restore against the standard tools, measured in the same run on
# the same data, printed as ratios against goals. Not a test: absolute figures vary with the
# machine, the ratios much less, which is why only the ratios get a PASS/MISS.
#
#   scripts/bench-mysql.sh [ROWS]                           default 2,000,000 rows
#   BENCH_ROWS_LIST="2000000 10000000" scripts/bench-mysql.sh   several sizes, one after another
#   BENCH_DATASETS="metrics mlflow kfp" (the default)         which databases to measure
#
# Three databases, each measured the same way:
#   metrics  one table shaped like MLflow's `metrics` (the six-column primary key makes it the
#            biggest and slowest table of a real MLflow database), ROWS rows;
#   mlflow   a whole MLflow 2.6 database, schema created by the real MLflow 2.6.0 server
#            (scripts/mlflow-env.sh), ROWS metric points over ROWS/1000 runs plus params, tags,
#            latest_metrics;
#   kfp      a many-table database like Kubeflow Pipelines' (mlpipeline + ML Metadata, 25
#            tables, large JSON/YAML manifests), BENCH_KFP_RUNS runs (default 10,000).
# Restore uses amlmigrate's default --jobs (override with BENCH_JOBS). For kfp it also measures
# whether reading on two connections at once would speed up a backup (the question of a
# multi-connection consistent backup). Needs MariaDB on 127.0.0.1:3306 as root with an empty
# password (its sequence engine fills the tables), mysqldump, zstd, curl and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

# Same target dir as scripts/test.sh, so the release build is shared rather than redone.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/amlmigrate/target}"
cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/amlmigrate"

MYSQL_URL="mysql://root@127.0.0.1:3306"
DB="amlbench_$$"              # unique per run: two benchmarks never share databases
BASE_DB="${DB}_base_restore"  # target of zstd -dc | mariadb
TOOL_DB="${DB}_tool_restore"  # target of amlmigrate restore --rename
WORK=$(mktemp -d -t amlbench.XXXXXX)
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

# Restore needs LOAD DATA LOCAL; turn it on for the run and put the server back as it was.
OLD_LOCAL_INFILE=$(my -N -e 'SELECT @@GLOBAL.local_infile + 0')
cleanup() {
  local d
  for d in "$DB" "$BASE_DB" "$TOOL_DB"; do my -e "DROP DATABASE IF EXISTS \`$d\`" || true; done
  my -e "SET GLOBAL local_infile = $OLD_LOCAL_INFILE" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # run the EXIT trap on Ctrl-C / kill too
my -e 'SET GLOBAL local_infile = 1'

# Measures backup and restore of database $DB (already filled) against mysqldump/mariadb.
bench_db() {
  local label=$1 restore_goal=$2
  local d
  for d in "$BASE_DB" "$TOOL_DB"; do my -e "DROP DATABASE IF EXISTS \`$d\`"; done
  local db_bytes tables
  db_bytes=$(my -N -e "SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = '$DB'")
  tables=$(my -N -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$DB'")
  my -N -e "SELECT table_name FROM information_schema.tables WHERE table_schema = '$DB'" |
    while read -r t; do my -e "SELECT COUNT(*) FROM \`$DB\`.\`$t\`" >/dev/null; done   # warm caches

  echo "bench: $label: backups…" >&2
  measure "mysqldump --single-transaction --quick -uroot -h127.0.0.1 $DB | zstd -3 -q -f -o $WORK/dump.sql.zst"
  local dump_s=$SECS dump_cpu=$CPU dump_srv=$SRV dump_size
  dump_size=$(stat -c %s "$WORK/dump.sql.zst")

  rm -rf "$WORK/repo"   # a new repository each run: the snapshot size must not be deduplicated
  measure "$BIN backup --init --quiet --repo $WORK/repo --mysql $MYSQL_URL --databases $DB"
  local bk_s=$SECS bk_rss=$RSS bk_cpu=$CPU bk_srv=$SRV snap_size
  snap_size=$(du -sb --exclude=locks "$WORK/repo" | cut -f1)

  measure "$BIN verify --quiet --repo $WORK/repo latest"
  local vf_s=$SECS vf_rss=$RSS

  echo "bench: $label: restores…" >&2
  my -e "DROP DATABASE IF EXISTS \`$BASE_DB\`; CREATE DATABASE \`$BASE_DB\`"
  measure "zstd -dc $WORK/dump.sql.zst | mariadb -uroot -h127.0.0.1 $BASE_DB"
  local rsb_s=$SECS rsb_cpu=$CPU rsb_srv=$SRV

  my -e "DROP DATABASE IF EXISTS \`$TOOL_DB\`"   # the tool creates its target itself
  local jobs_flag=""
  [ -n "${BENCH_JOBS:-}" ] && jobs_flag="--jobs $BENCH_JOBS"
  measure "$BIN restore --quiet --repo $WORK/repo latest --mysql $MYSQL_URL --rename $DB=$TOOL_DB $jobs_flag"
  local rs_s=$SECS rs_rss=$RSS rs_cpu=$CPU rs_srv=$SRV

  # EXTENDED: a full-row checksum of every table, whatever its checksum option says.
  local diff=0 t src dst
  for t in $(my -N -e "SELECT table_name FROM information_schema.tables WHERE table_schema = '$DB' AND table_type = 'BASE TABLE'"); do
    src=$(my -N -e "CHECKSUM TABLE \`$DB\`.\`$t\` EXTENDED" | cut -f2)
    dst=$(my -N -e "CHECKSUM TABLE \`$TOOL_DB\`.\`$t\` EXTENDED" | cut -f2)
    if [ "$src" != "$dst" ]; then
      echo "bench: $t differs: checksum $src vs $dst" >&2; diff=1
    fi
  done

  local r_bk r_size r_rs bk_mib rs_mib
  r_bk=$(ratio "$bk_s" "$dump_s"); r_size=$(ratio "$snap_size" "$dump_size"); r_rs=$(ratio "$rs_s" "$rsb_s")
  bk_mib=$(mib $(( bk_rss * 1024 ))); rs_mib=$(mib $(( rs_rss * 1024 )))
  local row='%-8s %-40s %9s %11s %10s %11s %11s\n'
  echo
  echo "== $label: $tables tables, $(mib "$db_bytes") MiB in InnoDB, restore --jobs ${BENCH_JOBS:-default}, $(date -u +%FT%TZ), $(nproc) cores =="
  printf "$row" "" "" wall size "peak RSS" "client CPU" "server CPU"
  printf "$row" backup "mysqldump --single-transaction | zstd -3" "${dump_s}s" "$(mib "$dump_size") MiB" "" "${dump_cpu}s" "${dump_srv}s"
  printf "$row" backup amlmigrate "${bk_s}s" "$(mib "$snap_size") MiB" "$bk_mib MiB" "${bk_cpu}s" "${bk_srv}s"
  printf "$row" verify "amlmigrate (re-reads every byte)" "${vf_s}s" "" "$(mib $(( vf_rss * 1024 ))) MiB" "" ""
  printf "$row" restore "zstd -dc dump.sql.zst | mariadb" "${rsb_s}s" "" "" "${rsb_cpu}s" "${rsb_srv}s"
  printf "$row" restore "amlmigrate --rename" "${rs_s}s" "" "$rs_mib MiB" "${rs_cpu}s" "${rs_srv}s"
  echo "checksums of every table: $([ "$diff" = 0 ] && echo equal || echo DIFFERENT)"
  echo
  local goal='%-14s %-34s %10s   %-15s %s\n'
  printf "$goal" "backup time" "amlmigrate / (mysqldump | zstd)" "$r_bk" "goal <= 0.80" "$(pass_le "$r_bk" 0.8)"
  printf "$goal" "snapshot size" "amlmigrate / dump.sql.zst" "$r_size" "goal <= 1.00" "$(pass_le "$r_size" 1.0)"
  printf "$goal" "restore time" "amlmigrate / (zstd -dc | mariadb)" "$r_rs" "goal <= $restore_goal" "$(pass_le "$r_rs" "$restore_goal")"
  printf "$goal" "peak RSS" "amlmigrate backup" "$bk_mib MiB" "goal < 150 MiB" "$(pass_lt "$bk_mib" 150)"
  printf "$goal" "peak RSS" "amlmigrate restore" "$rs_mib MiB" "goal < 150 MiB" "$(pass_lt "$rs_mib" 150)"
  # Checked after the report, so a mismatch still shows every figure.
  if [ "$diff" != 0 ]; then
    echo "bench: FAIL: a restored table differs from the source" >&2
    exit 1
  fi
}

# Would a backup read faster on two connections? Every table read in full (as a backup does),
# once on one connection, once split over two connections running at the same time.
read_probe() {
  local tables half one two
  tables=$(my -N -e "SELECT table_name FROM information_schema.tables WHERE table_schema = '$DB' AND table_type = 'BASE TABLE' ORDER BY data_length DESC")
  # Biggest tables dealt alternately, so both halves hold about as much.
  one=$(echo "$tables" | awk 'NR % 2 == 1' | sed "s/.*/SELECT * FROM \`$DB\`.\`&\`;/" | tr '\n' ' ')
  two=$(echo "$tables" | awk 'NR % 2 == 0' | sed "s/.*/SELECT * FROM \`$DB\`.\`&\`;/" | tr '\n' ' ')
  echo "$one" > "$WORK/one.sql"; echo "$two" > "$WORK/two.sql"
  measure "cat $WORK/one.sql $WORK/two.sql | mariadb -uroot -h127.0.0.1 --quick -N -B > /dev/null"
  local seq_s=$SECS
  measure "mariadb -uroot -h127.0.0.1 --quick -N -B < $WORK/one.sql > /dev/null & mariadb -uroot -h127.0.0.1 --quick -N -B < $WORK/two.sql > /dev/null; wait"
  local par_s=$SECS
  local r; r=$(ratio "$par_s" "$seq_s")
  echo "read probe ($label): every table read on one connection ${seq_s}s, on two at once ${par_s}s = ${r}x"
}

run_metrics() {
  local rows=$1
  my -e "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4"
  fill_metrics "$DB" "$rows"
  bench_db "metrics table, $rows rows" 0.7
}

run_mlflow() {
  local points=$1 runs=$(( $1 / 1000 ))
  my -e "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4"
  fill_mlflow "$DB" "$runs" 200
  bench_db "MLflow 2.6 database, $(( runs * 1000 )) metric points over $runs runs" 0.5
}

run_kfp() {
  local runs=${BENCH_KFP_RUNS:-10000}
  my -e "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4"
  fill_kfp "$DB" "$runs"
  label="Kubeflow Pipelines database, $runs runs"
  bench_db "$label" 0.5
  read_probe
}

for set in ${BENCH_DATASETS:-metrics mlflow kfp}; do
  case $set in
    metrics) for rows in ${BENCH_ROWS_LIST:-${1:-2000000}}; do run_metrics "$rows"; done ;;
    mlflow) run_mlflow "${1:-2000000}" ;;
    kfp) run_kfp ;;
    *) echo "bench: unknown dataset $set (metrics, mlflow, kfp)" >&2; exit 2 ;;
  esac
done
