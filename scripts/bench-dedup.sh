#!/usr/bin/env bash
# Benchmark: nightly snapshots of a growing MLflow-metrics-shaped table into a deduplicated
# (format 2) repository, against today's plain format (format 1) and `mysqldump | zstd -3`,
# in the same run on the same data. Prints ratios against the goals of issue 13.
#
#   scripts/bench-dedup.sh [ROWS] [NIGHTS]      default 500,000 rows, 30 nights
#
# Night 1 is a full snapshot; then one snapshot of the unchanged database (what an unchanged
# night adds); then each night 1 % of rows are appended and 0.1 % of recent rows updated
# before the snapshots. Needs MariaDB on 127.0.0.1:3306 as root with an empty password,
# mysqldump, zstd and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/amlmigrate/target}"
cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/amlmigrate"

ROWS=${1:-500000}
NIGHTS=${2:-30}
MYSQL_URL="mysql://root@127.0.0.1:3306"
DB="amldedup_$$"
R1="${DB}_r1"
R2="${DB}_r2"
WORK=$(mktemp -d -t amldedup.XXXXXX)
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

OLD_LOCAL_INFILE=$(my -N -e 'SELECT @@GLOBAL.local_infile + 0')
cleanup() {
  local d
  for d in "$DB" "$R1" "$R2"; do my -e "DROP DATABASE IF EXISTS \`$d\`" || true; done
  my -e "SET GLOBAL local_infile = $OLD_LOCAL_INFILE" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
my -e 'SET GLOBAL local_infile = 1'

my -e "CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4"
fill_metrics "$DB" "$ROWS"
COUNT=$ROWS

# Appends $1 rows continuing the sequence, and updates $2 of the newest rows.
grow() {
  local n=$1 upd=$2
  my "$DB" -e "INSERT INTO metrics
    SELECT ELT(1 + (s % 5), 'loss', 'accuracy', 'val_loss', 'val_accuracy', 'learning_rate'),
           SIN(s) * EXP(CAST(MOD(s, 17) AS SIGNED) - 8), 1732780800000 + s * 37,
           MD5(s % 200), s DIV 1000, (s % 9973 = 0)
    FROM (SELECT CAST(seq + $COUNT AS SIGNED) AS s FROM seq_1_to_$n) q;
    UPDATE metrics SET is_nan = 1 - is_nan ORDER BY timestamp DESC LIMIT $upd"
  COUNT=$(( COUNT + n ))
}

size() { du -sb "$1" | cut -f1; }
"$BIN" repo init --quiet --repo "$WORK/f1" --format 1
"$BIN" repo init --quiet --repo "$WORK/f2"

backup_to() { echo "$BIN backup --init --quiet --repo $1 --mysql $MYSQL_URL --databases $DB"; }

dumps=0
for night in $(seq 1 "$NIGHTS"); do
  if [ "$night" -gt 1 ]; then
    grow $(( COUNT / 100 )) $(( COUNT / 1000 ))
  fi
  measure "mysqldump --single-transaction --quick -uroot -h127.0.0.1 $DB | zstd -3 -q -f -o $WORK/dump.sql.zst"
  dump_s=$SECS
  dumps=$(( dumps + $(stat -c %s "$WORK/dump.sql.zst") ))
  measure "$(backup_to "$WORK/f1")"
  f1_s=$SECS
  measure "$(backup_to "$WORK/f2")"
  f2_s=$SECS f2_rss=$RSS
  if [ "$night" -eq 1 ]; then
    first_dump_s=$dump_s first_f1_s=$f1_s first_f2_s=$f2_s first_rss=$f2_rss
    first_size=$(size "$WORK/f2")
    # The same database again: what an unchanged night adds.
    measure "$(backup_to "$WORK/f2")"
    again_s=$SECS
    unchanged_added=$(( $(size "$WORK/f2") - first_size ))
    before_change=$(size "$WORK/f2")
  fi
  if [ "$night" -eq 2 ]; then
    change_added=$(( $(size "$WORK/f2") - before_change ))
    second_f1_s=$f1_s second_f2_s=$f2_s
  fi
  echo "bench: night $night: $COUNT rows, dump ${dump_s}s, format 1 ${f1_s}s, format 2 ${f2_s}s, format 2 holds $(mib "$(size "$WORK/f2")") MiB" >&2
done

f1_total=$(size "$WORK/f1")
f2_total=$(size "$WORK/f2")

echo "bench: restores…" >&2
measure "$BIN restore --quiet --repo $WORK/f1 latest --mysql $MYSQL_URL --rename $DB=$R1"
rs1_s=$SECS
measure "$BIN restore --quiet --repo $WORK/f2 latest --mysql $MYSQL_URL --rename $DB=$R2"
rs2_s=$SECS rs2_rss=$RSS
src=$(my -N -e "CHECKSUM TABLE \`$DB\`.metrics EXTENDED" | cut -f2)
dst=$(my -N -e "CHECKSUM TABLE \`$R2\`.metrics EXTENDED" | cut -f2)

measure "$BIN prune --quiet --repo $WORK/f2 --keep-last 7"
prune_s=$SECS
after_prune=$(size "$WORK/f2")
measure "$BIN verify --quiet --repo $WORK/f2 latest"
verify_s=$SECS

r_unchanged=$(awk -v a="$unchanged_added" -v b="$first_size" 'BEGIN { printf "%.2f", 100 * a / b }')
r_change=$(awk -v a="$change_added" -v b="$first_size" 'BEGIN { printf "%.2f", 100 * a / b }')
r_month=$(ratio "$f2_total" "$first_size")
r_f1=$(ratio "$f1_total" "$first_size")
r_dumps=$(ratio "$f2_total" "$dumps")
r_bk=$(ratio "$first_f2_s" "$first_f1_s")
r_bk_dump=$(ratio "$first_f2_s" "$first_dump_s")
r_bk2=$(ratio "$second_f2_s" "$second_f1_s")
r_rs=$(ratio "$rs2_s" "$rs1_s")
rss_mib=$(mib $(( first_rss * 1024 ))); rs_mib=$(mib $(( rs2_rss * 1024 )))

echo
echo "== $NIGHTS nights, $ROWS rows growing 1 %/night to $COUNT, $(date -u +%FT%TZ), $(nproc) cores =="
echo "first snapshot: format 2 $(mib "$first_size") MiB in ${first_f2_s}s, format 1 ${first_f1_s}s, mysqldump | zstd ${first_dump_s}s"
echo "unchanged snapshot: +$unchanged_added bytes in ${again_s}s; night 2 (1 % appended, 0.1 % updated): +$change_added bytes"
echo "after $NIGHTS nights: format 2 $(mib "$f2_total") MiB, format 1 $(mib "$f1_total") MiB, $NIGHTS dumps $(mib "$dumps") MiB; after prune to 7: $(mib "$after_prune") MiB"
echo "restore latest: format 2 ${rs2_s}s, format 1 ${rs1_s}s; verify ${verify_s}s; prune ${prune_s}s"
echo "checksum: source $src, restored from format 2 $dst"
echo
goal='%-34s %10s   %-16s %s\n'
printf "$goal" "unchanged snapshot adds (% of 1st)" "$r_unchanged" "goal < 1 %" "$(pass_lt "$r_unchanged" 1)"
printf "$goal" "1 %/0.1 % change adds (% of 1st)" "$r_change" "goal < 3 %" "$(pass_lt "$r_change" 3)"
printf "$goal" "$NIGHTS nights / one snapshot" "$r_month" "goal < 1.5 (30 n)" "$(pass_lt "$r_month" 1.5)"
printf "$goal" "  format 1: $NIGHTS nights / one" "$r_f1" "" ""
printf "$goal" "format 2 / $NIGHTS x mysqldump|zstd" "$r_dumps" "" ""
printf "$goal" "backup time 2 / 1 (first night)" "$r_bk" "goal <= 1.10" "$(pass_le "$r_bk" 1.1)"
printf "$goal" "backup time 2 / 1 (second night)" "$r_bk2" "" ""
printf "$goal" "backup time 2 / (mysqldump|zstd)" "$r_bk_dump" "goal <= 0.80" "$(pass_le "$r_bk_dump" 0.8)"
printf "$goal" "restore time 2 / 1" "$r_rs" "goal <= 1.10" "$(pass_le "$r_rs" 1.1)"
printf "$goal" "peak RSS backup / restore (MiB)" "$rss_mib/$rs_mib" "goal < 200" "$(pass_lt "$rss_mib" 200)"
printf "$goal" "prune $NIGHTS+1 -> 7 (s)" "$prune_s" "goal: seconds" ""
if [ "$src" != "$dst" ]; then
  echo "bench: FAIL: restored table differs from the source ($src vs $dst)" >&2
  exit 1
fi
