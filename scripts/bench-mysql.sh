#!/usr/bin/env bash
# Benchmark: amlmigrate backup/restore against the standard tools, measured in the same run on
# the same data, printed as ratios against goals. Not a test: absolute figures vary with the
# machine, the ratios much less, which is why only the ratios get a PASS/MISS.
#
#   scripts/bench-mysql.sh [ROWS]                           default 2,000,000 rows
#   BENCH_ROWS_LIST="2000000 10000000" scripts/bench-mysql.sh   several sizes, one after another
#
# The table is shaped like MLflow's `metrics` (the six-column primary key makes it the biggest
# and slowest table of a real MLflow database). Needs MariaDB on 127.0.0.1:3306 as root with
# an empty password (its sequence engine fills the table), mysqldump, zstd and GNU time.
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
my() { mariadb -uroot -h127.0.0.1 "$@"; }

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

# The server's CPU time tells whether a phase is bound by mariadbd or by the client. Only
# readable when the server runs on this machine; otherwise that column stays empty.
SERVER_PID=$(pgrep -x mariadbd | head -n1 || pgrep -x mysqld | head -n1 || true)
TICKS=$(getconf CLK_TCK)
server_cpu() { # user+sys seconds consumed by the server so far
  if [ -n "$SERVER_PID" ] && [ -r "/proc/$SERVER_PID/stat" ]; then
    # fields after the ")" of the command name: 12 = utime, 13 = stime (clock ticks)
    sed 's/.*) //' "/proc/$SERVER_PID/stat" | awk -v t="$TICKS" '{ printf "%.2f", ($12 + $13) / t }'
  else
    echo 0
  fi
}

# Runs a command line; sets SECS (wall), RSS (peak KiB of the largest process), CPU (user+sys
# seconds of the command's processes) and SRV (server CPU seconds during it). pipefail, so a
# failing mysqldump is not hidden behind a succeeding zstd.
measure() {
  local before after
  before=$(server_cpu)
  /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" bash -o pipefail -c "$1" >/dev/null
  after=$(server_cpu)
  local u s
  read -r SECS RSS u s < "$WORK/time"
  CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
  SRV=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }')
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
pass_le() { awk -v v="$1" -v g="$2" 'BEGIN { print (v <= g ? "PASS" : "MISS") }'; }
pass_lt() { awk -v v="$1" -v g="$2" 'BEGIN { print (v < g ? "PASS" : "MISS") }'; }

run_size() {
  local rows=$1
  local d
  for d in "$DB" "$BASE_DB" "$TOOL_DB"; do my -e "DROP DATABASE IF EXISTS \`$d\`"; done
  my -e "CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4"
  my "$DB" -e "CREATE TABLE metrics (
      \`key\` varchar(250) NOT NULL, value double NOT NULL, timestamp bigint NOT NULL,
      run_uuid varchar(32) NOT NULL, step bigint NOT NULL DEFAULT 0, is_nan tinyint(1) NOT NULL DEFAULT 0,
      PRIMARY KEY (\`key\`, timestamp, step, run_uuid, value, is_nan)) ENGINE=InnoDB"

  echo "bench: filling $rows rows…" >&2
  # 200 runs (32-hex ids), 5 metric keys, time rising 37 ms a point, step rising every 1000
  # points; values spread over many magnitudes and signs so they compress like real metrics,
  # not like a constant; about one row in 10k flagged NaN. Batches keep each transaction (and
  # its undo log) small enough for a default 128 MiB buffer pool.
  local batch=500000 filled=0 n
  while [ "$filled" -lt "$rows" ]; do
    n=$(( rows - filled < batch ? rows - filled : batch ))
    my "$DB" -e "INSERT INTO metrics
      SELECT ELT(1 + (s % 5), 'loss', 'accuracy', 'val_loss', 'val_accuracy', 'learning_rate'),
             SIN(s) * EXP(CAST(MOD(s, 17) AS SIGNED) - 8), 1732780800000 + s * 37,
             MD5(s % 200), s DIV 1000, (s % 9973 = 0)
      FROM (SELECT CAST(seq + $filled AS SIGNED) AS s FROM seq_1_to_$n) q"
    filled=$(( filled + n ))
  done
  # Fresh statistics, and the table read once so both backups start from the same warm caches.
  my "$DB" -e "ANALYZE TABLE metrics; SELECT COUNT(*) FROM metrics" >/dev/null
  local table_bytes
  table_bytes=$(my -N -e "SELECT data_length + index_length FROM information_schema.tables
                          WHERE table_schema = '$DB' AND table_name = 'metrics'")

  echo "bench: backups…" >&2
  measure "mysqldump --single-transaction --quick -uroot -h127.0.0.1 $DB | zstd -3 -q -f -o $WORK/dump.sql.zst"
  local dump_s=$SECS dump_cpu=$CPU dump_srv=$SRV dump_size
  dump_size=$(stat -c %s "$WORK/dump.sql.zst")

  rm -rf "$WORK/repo"   # a new repository each size: the snapshot size must not be deduplicated
  measure "$BIN backup --quiet --repo $WORK/repo --mysql $MYSQL_URL --databases $DB"
  local bk_s=$SECS bk_rss=$RSS bk_cpu=$CPU bk_srv=$SRV snap_size
  snap_size=$(du -sb "$WORK/repo/snapshots" | cut -f1)

  measure "$BIN verify --quiet --repo $WORK/repo latest"
  local vf_s=$SECS vf_rss=$RSS

  echo "bench: restores…" >&2
  my -e "DROP DATABASE IF EXISTS \`$BASE_DB\`; CREATE DATABASE \`$BASE_DB\`"
  measure "zstd -dc $WORK/dump.sql.zst | mariadb -uroot -h127.0.0.1 $BASE_DB"
  local rsb_s=$SECS rsb_cpu=$CPU rsb_srv=$SRV

  my -e "DROP DATABASE IF EXISTS \`$TOOL_DB\`"   # the tool creates its target itself
  measure "$BIN restore --quiet --repo $WORK/repo latest --mysql $MYSQL_URL --rename $DB=$TOOL_DB"
  local rs_s=$SECS rs_rss=$RSS rs_cpu=$CPU rs_srv=$SRV

  # EXTENDED: a full-row checksum, whatever the table's checksum option says.
  local src dst tool_rows
  src=$(my -N -e "CHECKSUM TABLE \`$DB\`.metrics EXTENDED" | cut -f2)
  dst=$(my -N -e "CHECKSUM TABLE \`$TOOL_DB\`.metrics EXTENDED" | cut -f2)
  tool_rows=$(my -N -e "SELECT COUNT(*) FROM \`$TOOL_DB\`.metrics")

  local r_bk r_size r_rs bk_mib rs_mib
  r_bk=$(ratio "$bk_s" "$dump_s"); r_size=$(ratio "$snap_size" "$dump_size"); r_rs=$(ratio "$rs_s" "$rsb_s")
  bk_mib=$(mib $(( bk_rss * 1024 ))); rs_mib=$(mib $(( rs_rss * 1024 )))
  local row='%-8s %-40s %9s %11s %10s %11s %11s\n'
  echo
  echo "== $rows rows, MLflow metrics shape ($(mib "$table_bytes") MiB in InnoDB), $(date -u +%FT%TZ), $(nproc) cores =="
  printf "$row" "" "" wall size "peak RSS" "client CPU" "server CPU"
  printf "$row" backup "mysqldump --single-transaction | zstd -3" "${dump_s}s" "$(mib "$dump_size") MiB" "" "${dump_cpu}s" "${dump_srv}s"
  printf "$row" backup amlmigrate "${bk_s}s" "$(mib "$snap_size") MiB" "$bk_mib MiB" "${bk_cpu}s" "${bk_srv}s"
  printf "$row" verify "amlmigrate (re-reads every byte)" "${vf_s}s" "" "$(mib $(( vf_rss * 1024 ))) MiB" "" ""
  printf "$row" restore "zstd -dc dump.sql.zst | mariadb" "${rsb_s}s" "" "" "${rsb_cpu}s" "${rsb_srv}s"
  printf "$row" restore "amlmigrate --rename" "${rs_s}s" "" "$rs_mib MiB" "${rs_cpu}s" "${rs_srv}s"
  echo "checksum: source $src, amlmigrate-restored $dst ($tool_rows rows)"
  echo
  local goal='%-14s %-34s %10s   %-15s %s\n'
  printf "$goal" "backup time" "amlmigrate / (mysqldump | zstd)" "$r_bk" "goal <= 0.80" "$(pass_le "$r_bk" 0.8)"
  printf "$goal" "snapshot size" "amlmigrate / dump.sql.zst" "$r_size" "goal <= 1.00" "$(pass_le "$r_size" 1.0)"
  printf "$goal" "restore time" "amlmigrate / (zstd -dc | mariadb)" "$r_rs" "goal <= 0.70" "$(pass_le "$r_rs" 0.7)"
  printf "$goal" "peak RSS" "amlmigrate backup" "$bk_mib MiB" "goal < 150 MiB" "$(pass_lt "$bk_mib" 150)"
  printf "$goal" "peak RSS" "amlmigrate restore" "$rs_mib MiB" "goal < 150 MiB" "$(pass_lt "$rs_mib" 150)"
  # Checked after the report, so a mismatch still shows every figure.
  if [ "$src" != "$dst" ] || [ "$tool_rows" != "$rows" ]; then
    echo "bench: FAIL: restored table differs from the source (checksum $src vs $dst, $tool_rows of $rows rows)" >&2
    exit 1
  fi
}

for rows in ${BENCH_ROWS_LIST:-${1:-2000000}}; do
  run_size "$rows"
done
