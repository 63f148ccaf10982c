#!/usr/bin/env bash
# Benchmark: backup and restore through an S3 repository against the standard pipeline on the
# same data in the same run: `mysqldump | zstd | S3 multipart upload` (boto3's upload_fileobj,
# what `aws s3 cp -` does) and its reverse. The S3 server is moto on loopback, so absolute
# figures say little about a real MinIO; the ratios and the peak RSS are the point.
#
#   scripts/bench-s3.sh [ROWS]        default 2,000,000 rows (MLflow metrics shape)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/amlmigrate/target}"
cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/amlmigrate"
MOTO=$(scripts/moto.sh)
ROWS=${1:-2000000}
DB="amlbench_s3_$$"
BASE_DB="${DB}_base_restore"
TOOL_DB="${DB}_tool_restore"
WORK=$(mktemp -d -t amlbench-s3.XXXXXX)
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$MOTO/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
OLD_LOCAL_INFILE=$(my -N -e 'SELECT @@GLOBAL.local_infile + 0')
cleanup() {
  kill "$MOTO_PID" 2>/dev/null || true
  local d
  for d in "$DB" "$BASE_DB" "$TOOL_DB"; do my -e "DROP DATABASE IF EXISTS \`$d\`" || true; done
  my -e "SET GLOBAL local_infile = $OLD_LOCAL_INFILE" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
my -e 'SET GLOBAL local_infile = 1'

export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
for _ in $(seq 1 50); do curl -sf "$AWS_ENDPOINT_URL" >/dev/null && break; sleep 0.2; done
curl -sf -X PUT "$AWS_ENDPOINT_URL/bench" >/dev/null

# The standard pipeline's S3 end: boto3 (moto's dependency) streaming stdin up as multipart
# parts, or an object down to stdout.
cat >"$WORK/s3.py" <<'PY'
import sys, boto3
s3 = boto3.client("s3")
op, key = sys.argv[1], sys.argv[2]
if op == "put":
    s3.upload_fileobj(sys.stdin.buffer, "bench", key)
else:
    s3.download_fileobj("bench", key, sys.stdout.buffer)
PY
PY="$MOTO/bin/python"

my -e "CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4"
fill_metrics "$DB" "$ROWS"

echo "bench: backups into S3…" >&2
measure "mysqldump --single-transaction --quick -uroot -h127.0.0.1 $DB | zstd -3 -q | $PY $WORK/s3.py put dump.sql.zst"
dump_s=$SECS dump_rss=$RSS
measure "$BIN backup --init --quiet --repo s3://bench/repo --mysql mysql://root@127.0.0.1:3306 --databases $DB"
bk_s=$SECS bk_rss=$RSS
measure "$BIN verify --quiet --repo s3://bench/repo latest"
vf_s=$SECS vf_rss=$RSS

echo "bench: restores from S3…" >&2
my -e "CREATE DATABASE \`$BASE_DB\`"
measure "$PY $WORK/s3.py get dump.sql.zst | zstd -dc | mariadb -uroot -h127.0.0.1 $BASE_DB"
rsb_s=$SECS
measure "$BIN restore --quiet --repo s3://bench/repo latest --mysql mysql://root@127.0.0.1:3306 --rename $DB=$TOOL_DB"
rs_s=$SECS rs_rss=$RSS

src=$(my -N -e "CHECKSUM TABLE \`$DB\`.metrics EXTENDED" | cut -f2)
dst=$(my -N -e "CHECKSUM TABLE \`$TOOL_DB\`.metrics EXTENDED" | cut -f2)

row='%-8s %-52s %9s %10s\n'
echo
echo "== $ROWS rows through S3 (moto on loopback), $(date -u +%FT%TZ), $(nproc) cores =="
printf "$row" "" "" wall "peak RSS"
printf "$row" backup "mysqldump | zstd -3 | boto3 multipart upload" "${dump_s}s" "$(mib $(( dump_rss * 1024 ))) MiB"
printf "$row" backup "amlmigrate --repo s3://" "${bk_s}s" "$(mib $(( bk_rss * 1024 ))) MiB"
printf "$row" verify "amlmigrate (re-reads every byte from S3)" "${vf_s}s" "$(mib $(( vf_rss * 1024 ))) MiB"
printf "$row" restore "boto3 download | zstd -dc | mariadb" "${rsb_s}s" ""
printf "$row" restore "amlmigrate --repo s3:// --rename" "${rs_s}s" "$(mib $(( rs_rss * 1024 ))) MiB"
echo "checksum: source $src, amlmigrate-restored $dst"
echo
r_bk=$(ratio "$bk_s" "$dump_s"); r_rs=$(ratio "$rs_s" "$rsb_s")
goal='%-14s %-40s %10s   %-15s %s\n'
printf "$goal" "backup time" "amlmigrate / (mysqldump | zstd | s3)" "$r_bk" "goal <= 1.00" "$(pass_le "$r_bk" 1.0)"
printf "$goal" "restore time" "amlmigrate / (s3 | zstd -dc | mariadb)" "$r_rs" "goal <= 1.00" "$(pass_le "$r_rs" 1.0)"
printf "$goal" "peak RSS" "amlmigrate backup" "$(mib $(( bk_rss * 1024 ))) MiB" "goal < 150 MiB" "$(pass_lt "$(mib $(( bk_rss * 1024 )))" 150)"
if [ "$src" != "$dst" ]; then
  echo "bench: FAIL: restored table differs from the source ($src vs $dst)" >&2
  exit 1
fi
