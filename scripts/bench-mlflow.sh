#!/usr/bin/env bash
# Benchmark: `amlmigrate mlflow migrate` against a raw `mariadb --quick | psql \copy` of the same
# tables, measured in the same run on the same data, printed as ratios.
#
#   scripts/bench-mlflow.sh [POINTS_PER_METRIC]     default 1000: 10 experiments x 20 runs x
#                                                   5 metrics x 1000 steps = 1,000,000 points
#   BENCH_STEPS_LIST="1000 10000" scripts/bench-mlflow.sh    1M and 10M points
#
# Then, at BENCH_EXPORT_IMPORT_STEPS (default 100: 100,000 points, a tenth of the default, since
# the REST tool takes minutes), it times mlflow-export-import (export from a real 2.6.0 server,
# import into a real 3.1.1 server) against amlmigrate on the same data. Set it to 0 to skip.
#
# The MLflow 2.6 schema is created by a real MLflow 2.6.0 server (scripts/mlflow-env.sh), the
# points are written with SQL. Needs MariaDB on 127.0.0.1:3306 and PostgreSQL on 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/amlmigrate/target}"
cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/amlmigrate"
V26=$(scripts/mlflow-env.sh | head -1)
DB="amlbench_mlf_$$"
WORK=$(mktemp -d -t amlbench-mlf.XXXXXX)
my() { mariadb -uroot -h127.0.0.1 "$@"; }
pg() { psql -h127.0.0.1 -Upostgres -qAt -v ON_ERROR_STOP=1 "$@"; }
SERVERS=()
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill -s TERM -- "-$SERVER_PID" 2>/dev/null || true
  for p in "${SERVERS[@]}"; do kill -s TERM -- "-$p" 2>/dev/null || true; done
  pg postgres -c "DROP DATABASE IF EXISTS ${DB}_ei WITH (FORCE)" 2>/dev/null || true
  pg postgres -c "DROP DATABASE IF EXISTS ${DB}_tool_ei WITH (FORCE)" 2>/dev/null || true
  my -e "DROP DATABASE IF EXISTS \`$DB\`" || true
  for d in "${DB}_raw" "${DB}_tool"; do pg postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

measure() { # seconds and peak RSS (KiB) of a command line → SECS, RSS
  /usr/bin/time -f '%e %M' -o "$WORK/time" bash -o pipefail -c "$1" >/dev/null
  read -r SECS RSS < "$WORK/time"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v g="$2" 'BEGIN { print (r <= g ? "PASS" : "MISS") }'; }

make_source() {
  local steps=$1
  my -e "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\`"
  # The exact 2.6 schema comes from MLflow itself.
  local port=$((20000 + $$ % 20000))
  PATH="$V26/bin:$PATH" setsid "$V26/bin/mlflow" server --backend-store-uri "mysql+pymysql://root@127.0.0.1:3306/$DB" \
    --host 127.0.0.1 --port "$port" --workers 1 >/dev/null 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done
  kill -s TERM -- "-$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  echo "seeding $(( 200 * 5 * steps )) metric points…" >&2
  my "$DB" -e "
    INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
      SELECT seq, CONCAT('llm-finetune-', seq), CONCAT('mlflow-artifacts:/', seq), 'active', 1732780800000, 1732780800000 FROM seq_1_to_10;
    INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time,
                      source_version, lifecycle_stage, artifact_uri, experiment_id)
      SELECT SUBSTR(MD5(seq), 1, 32), CONCAT('ft-', seq), 'LOCAL', 'train.py', '', 'aml', 'FINISHED',
             1732780800000 + seq, 1732780900000 + seq, '', 'active',
             CONCAT('mlflow-artifacts:/', 1 + seq % 10, '/', SUBSTR(MD5(seq), 1, 32), '/artifacts'), 1 + seq % 10
      FROM seq_1_to_200;
    INSERT INTO params (\`key\`, value, run_uuid)
      SELECT CONCAT('p', p.seq), CONCAT('value-', r.seq), SUBSTR(MD5(r.seq), 1, 32) FROM seq_1_to_200 r, seq_1_to_10 p;
    INSERT INTO tags (\`key\`, value, run_uuid)
      SELECT 'mlflow.runName', CONCAT('ft-', seq), SUBSTR(MD5(seq), 1, 32) FROM seq_1_to_200;
    INSERT INTO metrics (\`key\`, value, timestamp, run_uuid, step, is_nan)
      SELECT ELT(m.seq, 'loss', 'accuracy', 'val_loss', 'learning_rate', 'grad_norm'),
             SIN(r.seq * 1000 + s.seq) * 3, 1732780800000 + s.seq * 1000, SUBSTR(MD5(r.seq), 1, 32), s.seq, 0
      FROM seq_1_to_200 r, seq_1_to_5 m, seq_0_to_$((steps - 1)) s;
    INSERT INTO latest_metrics (\`key\`, value, timestamp, step, is_nan, run_uuid)
      SELECT \`key\`, MAX(value), MAX(timestamp), MAX(step), 0, run_uuid FROM metrics GROUP BY run_uuid, \`key\`;"
}

# The raw pipe: each shared table through the mysql client into psql's \copy, into the same
# schema, with no checks at all. tinyint 0/1 loads into boolean; the client prints NULL as the
# word NULL, which the seeded tables hold in no text column.
raw_copy() {
  set -eo pipefail
  local target=$1 t cols
  pg postgres -c "CREATE DATABASE $target"
  pg "$target" -f migrations/mlflow-3.1.1-postgres.sql
  for t in experiments experiment_tags runs tags params metrics latest_metrics datasets inputs input_tags \
           registered_models registered_model_tags model_versions model_version_tags registered_model_aliases; do
    cols=$(my -N -e "SELECT GROUP_CONCAT(CONCAT('\`', COLUMN_NAME, '\`') ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '$DB' AND TABLE_NAME = '$t'")
    my --quick -N -B "$DB" -e "SELECT $cols FROM \`$t\`" |
      pg "$target" -c "\\copy public.$t ($(echo "$cols" | tr -d '\`')) FROM STDIN WITH (NULL 'NULL')"
  done
}

run_size() {
  local steps=$1 points=$(( 200 * 5 * $1 ))
  make_source "$steps"
  for d in "${DB}_raw" "${DB}_tool"; do pg postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)"; done
  export -f raw_copy my pg; export DB
  measure "raw_copy ${DB}_raw"
  local raw_s=$SECS
  pg postgres -c "CREATE DATABASE ${DB}_tool"
  measure "$BIN mlflow migrate --quiet --from mysql://root@127.0.0.1:3306/$DB --to postgres://postgres@127.0.0.1:5432/${DB}_tool"
  local tool_s=$SECS tool_rss=$RSS
  local n; n=$(pg "${DB}_tool" -c "SELECT count(*) FROM metrics")
  [ "$n" = "$points" ] || { echo "migrated $n points, expected $points" >&2; exit 1; }
  local r; r=$(ratio "$tool_s" "$raw_s")
  cat <<REPORT

== $points metric points (200 runs x 5 metrics x $steps steps), $(date -u +%FT%TZ), $(nproc) cores ==
raw      mariadb --quick | psql \\copy (no checks)           ${raw_s}s
migrate  amlmigrate mlflow migrate (copy + verify)          ${tool_s}s   peak RSS $(( tool_rss / 1024 )) MiB
points/s amlmigrate                                         $(awk -v p="$points" -v s="$tool_s" 'BEGIN { printf "%d", p / s }')

migration time  amlmigrate / raw pipe   $r   goal <= 1.20  $(verdict "$r" 1.2)
peak RSS        $(( tool_rss / 1024 )) MiB                   goal < 150 MiB  $(verdict "$(( tool_rss / 1024 ))" 149)
REPORT
}

for steps in ${BENCH_STEPS_LIST:-${1:-1000}}; do
  run_size "$steps"
done

start_server() { # venv, backend URI, port, artifact folder
  PATH="$1/bin:$PATH" setsid "$1/bin/mlflow" server --backend-store-uri "$2" --serve-artifacts \
    --artifacts-destination "$4" --host 127.0.0.1 --port "$3" --workers 2 >/dev/null 2>&1 &
  SERVERS+=("$!")
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$3/health" >/dev/null && return 0; sleep 0.5; done
  echo "mlflow server on port $3 did not start" >&2; exit 1
}

compare_export_import() {
  local steps=$1 points=$(( 200 * 5 * $1 ))
  local ve="${AMLMIGRATE_CACHE:-$HOME/.cache/amlmigrate}/venv-mlflow-export"
  if [ ! -x "$ve/bin/export-experiments" ]; then
    echo "installing mlflow-export-import (with MLflow 2.6.0) into $ve…" >&2
    python3 -m venv "$ve"
    "$ve/bin/pip" install -q "mlflow==2.6.0" mlflow-export-import "numpy<2" "sqlalchemy<2.1" "pandas<2.3" >&2
  fi
  local v311; v311=$(scripts/mlflow-env.sh | tail -1)
  make_source "$steps"
  pg postgres -c "DROP DATABASE IF EXISTS ${DB}_ei WITH (FORCE)" -c "CREATE DATABASE ${DB}_ei"
  local p26=$((21000 + $$ % 20000)) p311=$((22000 + $$ % 20000))
  start_server "$V26" "mysql+pymysql://root@127.0.0.1:3306/$DB" "$p26" "$WORK/art26"
  start_server "$v311" "postgresql://postgres@127.0.0.1:5432/${DB}_ei" "$p311" "$WORK/art311"
  measure "MLFLOW_TRACKING_URI=http://127.0.0.1:$p26 $ve/bin/export-experiments --experiments all --output-dir $WORK/ei \
           && MLFLOW_TRACKING_URI=http://127.0.0.1:$p311 $ve/bin/import-experiments --input-dir $WORK/ei"
  local ei_s=$SECS
  local ei_points; ei_points=$(pg "${DB}_ei" -c "SELECT count(*) FROM metrics")
  local ei_runs; ei_runs=$(pg "${DB}_ei" -c "SELECT count(*) FROM runs")
  local same_ids; same_ids=$(pg "${DB}_ei" -c "SELECT count(*) FROM runs WHERE run_uuid IN ($(my -N "$DB" -e "SELECT GROUP_CONCAT(CONCAT(\"'\", run_uuid, \"'\")) FROM runs"))")
  for p in "${SERVERS[@]}"; do kill -s TERM -- "-$p" 2>/dev/null || true; done
  SERVERS=()
  pg postgres -c "DROP DATABASE IF EXISTS ${DB}_tool_ei WITH (FORCE)" -c "CREATE DATABASE ${DB}_tool_ei"
  measure "$BIN mlflow migrate --quiet --from mysql://root@127.0.0.1:3306/$DB --to postgres://postgres@127.0.0.1:5432/${DB}_tool_ei"
  local tool_s=$SECS
  local speedup; speedup=$(awk -v a="$ei_s" -v b="$tool_s" 'BEGIN { printf "%.0f", a / b }')
  cat <<REPORT

== mlflow-export-import vs amlmigrate, $points metric points (200 runs x 5 metrics x $steps steps) ==
export-import  export from 2.6.0 + import into 3.1.1 (REST)     ${ei_s}s   $ei_runs runs, $ei_points points arrived, $same_ids runs kept their id
amlmigrate     mlflow migrate (copy + verify)                   ${tool_s}s   200 runs, $points points, every id kept
speed-up       amlmigrate is ${speedup}x faster                 goal >= 50x  $(awk -v r="$speedup" 'BEGIN { print (r >= 50 ? "PASS" : "MISS") }')
REPORT
}

if [ "${BENCH_EXPORT_IMPORT_STEPS:-100}" != 0 ]; then
  compare_export_import "${BENCH_EXPORT_IMPORT_STEPS:-100}"
fi
