# Shared by the benchmark scripts: the MariaDB client, timing with peak RSS and CPU, ratios,
# and a table shaped like MLflow's `metrics`. Sourced, not run. WORK must be set.

my() { mariadb -uroot -h127.0.0.1 "$@"; }

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

# Creates `metrics` in database $1 (which must exist) and fills it with $2 rows.
fill_metrics() {
  my "$1" -e "CREATE TABLE metrics (
      \`key\` varchar(250) NOT NULL, value double NOT NULL, timestamp bigint NOT NULL,
      run_uuid varchar(32) NOT NULL, step bigint NOT NULL DEFAULT 0, is_nan tinyint(1) NOT NULL DEFAULT 0,
      PRIMARY KEY (\`key\`, timestamp, step, run_uuid, value, is_nan)) ENGINE=InnoDB"

  echo "bench: filling $2 rows…" >&2
  # 200 runs (32-hex ids), 5 metric keys, time rising 37 ms a point, step rising every 1000
  # points; values spread over many magnitudes and signs so they compress like real metrics,
  # not like a constant; about one row in 10k flagged NaN. Batches keep each transaction (and
  # its undo log) small enough for a default 128 MiB buffer pool.
  local rows=$2 batch=500000 filled=0 n
  while [ "$filled" -lt "$2" ]; do
    n=$(( rows - filled < batch ? rows - filled : batch ))
    my "$1" -e "INSERT INTO metrics
      SELECT ELT(1 + (s % 5), 'loss', 'accuracy', 'val_loss', 'val_accuracy', 'learning_rate'),
             SIN(s) * EXP(CAST(MOD(s, 17) AS SIGNED) - 8), 1732780800000 + s * 37,
             MD5(s % 200), s DIV 1000, (s % 9973 = 0)
      FROM (SELECT CAST(seq + $filled AS SIGNED) AS s FROM seq_1_to_$n) q"
    filled=$(( filled + n ))
  done
  # Fresh statistics, and the table read once so both backups start from the same warm caches.
  my "$1" -e "ANALYZE TABLE metrics; SELECT COUNT(*) FROM metrics" >/dev/null
}
