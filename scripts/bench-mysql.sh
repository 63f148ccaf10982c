#!/usr/bin/env bash
# Benchmark: amlmigrate backup/restore against the standard tools, measured in the same run on
# the same data, printed as ratios. Not a test: figures vary with the machine, ratios much less.
#
#   scripts/bench-mysql.sh [ROWS]             default 2,000,000 rows
#   BENCH_ROWS_LIST="2000000 10000000" scripts/bench-mysql.sh
#
# The table is shaped like MLflow's `metrics` (six-column primary key). Needs MariaDB on
# 127.0.0.1:3306 as root (its sequence engine fills the table), mysqldump, zstd, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/amlmigrate/target}"
cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/amlmigrate"
MYSQL_URL="mysql://root@127.0.0.1:3306"
DB="amlbench_$$"
WORK=$(mktemp -d)
my() { mariadb -uroot -h127.0.0.1 "$@"; }
cleanup() {
  for d in "$DB" "${DB}_dump" "${DB}_tool"; do my -e "DROP DATABASE IF EXISTS \`$d\`" || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
my -e 'SET GLOBAL local_infile = 1'

# seconds and peak RSS (KiB) of a command line, into the globals SECS and RSS
measure() {
  /usr/bin/time -f '%e %M' -o "$WORK/time" bash -c "$1" >/dev/null
  read -r SECS RSS < "$WORK/time"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v g="$2" 'BEGIN { print (r <= g ? "PASS" : "MISS") }'; }

run_size() {
  local rows=$1
  for d in "$DB" "${DB}_dump" "${DB}_tool"; do my -e "DROP DATABASE IF EXISTS \`$d\`"; done
  my -e "CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4"
  my "$DB" -e "CREATE TABLE metrics (
      \`key\` varchar(250) NOT NULL, value double NOT NULL, timestamp bigint NOT NULL,
      run_uuid varchar(32) NOT NULL, step bigint NOT NULL DEFAULT 0, is_nan tinyint(1) NOT NULL DEFAULT 0,
      PRIMARY KEY (\`key\`, timestamp, step, run_uuid, value, is_nan)) ENGINE=InnoDB"
  echo "filling $rows rows…" >&2
  # 200 runs, 5 metric keys, points at increasing steps and times; values are varied doubles.
  local batch=500000 done=0
  while [ "$done" -lt "$rows" ]; do
    local n=$(( rows - done < batch ? rows - done : batch ))
    my "$DB" -e "INSERT INTO metrics
      SELECT ELT(1 + (s % 5), 'loss', 'accuracy', 'val_loss', 'val_accuracy', 'learning_rate'),
             SIN(s) * EXP(CAST(MOD(s, 17) AS SIGNED) - 8), 1732780800000 + s * 37,
             SUBSTR(MD5(s % 200), 1, 32), s DIV 1000, (s % 9973 = 0)
      FROM (SELECT CAST(seq + $done AS SIGNED) AS s FROM seq_1_to_$n) q"
    done=$(( done + n ))
  done
  my "$DB" -e "ANALYZE TABLE metrics; SELECT COUNT(*) FROM metrics" >/dev/null   # warm the buffer pool

  measure "mysqldump --single-transaction --quick -uroot -h127.0.0.1 $DB | zstd -3 -q -o $WORK/dump.sql.zst -f"
  local dump_s=$SECS dump_size; dump_size=$(stat -c %s "$WORK/dump.sql.zst")
  rm -rf "$WORK/repo"
  measure "$BIN backup --quiet --repo $WORK/repo --mysql $MYSQL_URL --databases $DB"
  local bk_s=$SECS bk_rss=$RSS snap_size; snap_size=$(du -sb "$WORK/repo/snapshots" | cut -f1)
  measure "$BIN verify --quiet --repo $WORK/repo latest"
  local vf_s=$SECS

  my -e "CREATE DATABASE \`${DB}_dump\`"
  measure "zstd -dc $WORK/dump.sql.zst | mariadb -uroot -h127.0.0.1 ${DB}_dump"
  local rs_base=$SECS
  measure "$BIN restore --quiet --repo $WORK/repo latest --mysql $MYSQL_URL --rename $DB=${DB}_tool"
  local rs_s=$SECS rs_rss=$RSS

  local src dst
  src=$(my -N -e "CHECKSUM TABLE \`$DB\`.metrics EXTENDED" | cut -f2)
  dst=$(my -N -e "CHECKSUM TABLE \`${DB}_tool\`.metrics EXTENDED" | cut -f2)
  if [ "$src" != "$dst" ]; then echo "CHECKSUM differs after restore: $src vs $dst" >&2; exit 1; fi

  local r_bk r_size r_rs
  r_bk=$(ratio "$bk_s" "$dump_s"); r_size=$(ratio "$snap_size" "$dump_size"); r_rs=$(ratio "$rs_s" "$rs_base")
  cat <<REPORT

== $rows rows (MLflow metrics shape), $(date -u +%FT%TZ), $(nproc) cores ==
backup   mysqldump --single-transaction --quick | zstd -3   ${dump_s}s   $(( dump_size / 1048576 )) MiB
backup   amlmigrate                                        ${bk_s}s   $(( snap_size / 1048576 )) MiB   peak RSS $(( bk_rss / 1024 )) MiB
verify   amlmigrate (re-reads every byte)                  ${vf_s}s
restore  zstd -dc dump | mariadb                           ${rs_base}s
restore  amlmigrate                                        ${rs_s}s   peak RSS $(( rs_rss / 1024 )) MiB
checksum source = restored = $src

backup time   amlmigrate / (mysqldump | zstd)   $r_bk   goal <= 0.80  $(verdict "$r_bk" 0.8)
snapshot size amlmigrate / dump.sql.zst          $r_size   goal <= 1.00  $(verdict "$r_size" 1.0)
restore time  amlmigrate / (zstd -dc | mariadb) $r_rs   goal <= 0.70  $(verdict "$r_rs" 0.7)
peak RSS      backup $(( bk_rss / 1024 )) MiB, restore $(( rs_rss / 1024 )) MiB     goal < 150 MiB  $(verdict "$(( (bk_rss > rs_rss ? bk_rss : rs_rss) / 1024 ))" 149)
REPORT
}

for rows in ${BENCH_ROWS_LIST:-${1:-2000000}}; do
  run_size "$rows"
done
