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

# An MLflow 2.6 database in $1 (which must exist): the schema created by the real MLflow 2.6.0
# server (scripts/mlflow-env.sh), then $2 runs in 20 experiments, each with 10 params, 3 tags
# and 5 metrics of $3 steps (metrics = $2 * 5 * $3 points), and latest_metrics from them.
fill_mlflow() {
  local db=$1 runs=$2 steps=$3 v26 port pid
  v26=$(scripts/mlflow-env.sh | head -1)
  port=$((20000 + $$ % 20000))
  PATH="$v26/bin:$PATH" setsid "$v26/bin/mlflow" server --backend-store-uri "mysql+pymysql://root@127.0.0.1:3306/$db" \
    --host 127.0.0.1 --port "$port" --workers 1 >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done
  kill -s TERM -- "-$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  my -N -e "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$db' AND TABLE_NAME = 'metrics'" | grep -q 1 \
    || { echo "bench: MLflow 2.6 did not create its schema in $db" >&2; exit 1; }
  echo "bench: seeding MLflow: $runs runs, $(( runs * 5 * steps )) metric points…" >&2
  my "$db" -e "
    INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
      SELECT seq, CONCAT('llm-finetune-', seq), CONCAT('mlflow-artifacts:/', seq), 'active', 1732780800000, 1732780800000 FROM seq_1_to_20;
    INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time,
                      source_version, lifecycle_stage, artifact_uri, experiment_id)
      SELECT MD5(seq), CONCAT('ft-', seq), 'LOCAL', 'train.py', '', 'aml', 'FINISHED',
             1732780800000 + seq, 1732780900000 + seq, '', 'active',
             CONCAT('mlflow-artifacts:/', 1 + seq % 20, '/', MD5(seq), '/artifacts'), 1 + seq % 20
      FROM seq_1_to_$runs;
    INSERT INTO params (\`key\`, value, run_uuid)
      SELECT CONCAT('param_', p.seq), CONCAT('value-', r.seq * p.seq), MD5(r.seq) FROM seq_1_to_$runs r, seq_1_to_10 p;
    INSERT INTO tags (\`key\`, value, run_uuid)
      SELECT ELT(t.seq, 'mlflow.runName', 'mlflow.user', 'mlflow.source.name'), CONCAT('ft-', r.seq), MD5(r.seq)
      FROM seq_1_to_$runs r, seq_1_to_3 t;"
  # Metrics in batches of runs, so no transaction outgrows a default buffer pool.
  local from=1 to
  while [ "$from" -le "$runs" ]; do
    to=$(( from + 399 < runs ? from + 399 : runs ))
    my "$db" -e "INSERT INTO metrics (\`key\`, value, timestamp, run_uuid, step, is_nan)
      SELECT ELT(m.seq, 'loss', 'accuracy', 'val_loss', 'learning_rate', 'grad_norm'),
             SIN(r.seq * 1000 + s.seq) * EXP(CAST(MOD(s.seq, 11) AS SIGNED) - 5), 1732780800000 + s.seq * 1000,
             MD5(r.seq), s.seq, 0
      FROM seq_${from}_to_$to r, seq_1_to_5 m, seq_0_to_$(( steps - 1 )) s"
    from=$(( to + 1 ))
  done
  my "$db" -e "INSERT INTO latest_metrics (\`key\`, value, timestamp, step, is_nan, run_uuid)
      SELECT \`key\`, MAX(value), MAX(timestamp), MAX(step), 0, run_uuid FROM metrics GROUP BY run_uuid, \`key\`;
    ANALYZE TABLE metrics, latest_metrics, params, tags, runs" >/dev/null
}

# A Kubeflow-Pipelines-shaped database in $1 (which must exist): mlpipeline's tables and the ML
# Metadata store's (which KFP keeps in `metadb`), 25 tables in all, scaled by $2 (runs).
fill_kfp() {
  local db=$1 n=$2
  echo "bench: seeding Kubeflow Pipelines: $n runs over 25 tables…" >&2
  my "$db" -e "
    CREATE TABLE experiments (UUID varchar(64) NOT NULL PRIMARY KEY, Name varchar(128) NOT NULL, Description varchar(255) NOT NULL,
      CreatedAtInSec bigint NOT NULL, Namespace varchar(63) NOT NULL DEFAULT '', StorageState varchar(255) NOT NULL,
      UNIQUE KEY idx_name_namespace (Name, Namespace)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
    CREATE TABLE pipelines (UUID varchar(64) NOT NULL PRIMARY KEY, CreatedAtInSec bigint NOT NULL, Name varchar(128) NOT NULL,
      Description longtext NOT NULL, Parameters longtext NOT NULL, Status varchar(255) NOT NULL, DefaultVersionId varchar(255) DEFAULT NULL,
      Namespace varchar(63) DEFAULT '', UNIQUE KEY name_namespace_index (Name, Namespace)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
    CREATE TABLE pipeline_versions (UUID varchar(64) NOT NULL PRIMARY KEY, CreatedAtInSec bigint NOT NULL, Name varchar(127) NOT NULL,
      Parameters longtext NOT NULL, PipelineId varchar(64) NOT NULL, Status varchar(255) NOT NULL, CodeSourceUrl varchar(255) DEFAULT NULL,
      Description longtext NOT NULL, PipelineSpec longtext NOT NULL, PipelineSpecURI longtext NOT NULL,
      UNIQUE KEY idx_pipelineid_name (Name, PipelineId), KEY idx_pipeline_versions_CreatedAtInSec (CreatedAtInSec),
      KEY idx_pipeline_versions_PipelineId (PipelineId),
      CONSTRAINT fk_pv FOREIGN KEY (PipelineId) REFERENCES pipelines (UUID) ON DELETE CASCADE) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
    CREATE TABLE jobs (UUID varchar(64) NOT NULL PRIMARY KEY, DisplayName varchar(255) NOT NULL, Name varchar(255) NOT NULL,
      Namespace varchar(255) NOT NULL, ServiceAccount varchar(255) NOT NULL DEFAULT '', Description varchar(255) NOT NULL,
      MaxConcurrency bigint NOT NULL, NoCatchup tinyint(1) NOT NULL DEFAULT 0, CreatedAtInSec bigint NOT NULL, UpdatedAtInSec bigint NOT NULL,
      Enabled tinyint(1) NOT NULL, CronScheduleStartTimeInSec bigint DEFAULT NULL, Crontab varchar(255) DEFAULT NULL,
      Conditions varchar(125) NOT NULL, ExperimentUUID varchar(64) NOT NULL, PipelineSpecManifest longtext,
      WorkflowSpecManifest longtext NOT NULL, Parameters longtext, RuntimeParameters longtext, PipelineRoot longtext,
      KEY idx_jobs_experiment (ExperimentUUID)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
    CREATE TABLE run_details (UUID varchar(64) NOT NULL PRIMARY KEY, ExperimentUUID varchar(64) NOT NULL, DisplayName varchar(255) NOT NULL,
      Name varchar(255) NOT NULL, StorageState varchar(255) NOT NULL, Namespace varchar(255) NOT NULL, ServiceAccount varchar(255) NOT NULL DEFAULT '',
      Description varchar(255) NOT NULL, CreatedAtInSec bigint NOT NULL, ScheduledAtInSec bigint DEFAULT 0, FinishedAtInSec bigint DEFAULT 0,
      Conditions varchar(125) NOT NULL, PipelineId varchar(255) NOT NULL, PipelineName varchar(255) NOT NULL,
      PipelineSpecManifest longtext, WorkflowSpecManifest longtext NOT NULL, Parameters longtext, RuntimeParameters longtext,
      PipelineRoot longtext, PipelineRuntimeManifest longtext NOT NULL, WorkflowRuntimeManifest longtext NOT NULL, JobUUID varchar(255) DEFAULT NULL,
      State varchar(64) DEFAULT NULL, StateHistory longtext, PipelineContextId bigint DEFAULT 0, PipelineRunContextId bigint DEFAULT 0,
      KEY experimentuuid_createatinsec (ExperimentUUID, CreatedAtInSec), KEY experimentuuid_conditions_finishedatinsec (ExperimentUUID, Conditions, FinishedAtInSec),
      KEY namespace_createatinsec (Namespace, CreatedAtInSec), KEY namespace_conditions_finishedatinsec (Namespace, Conditions, FinishedAtInSec)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
    CREATE TABLE resource_references (ResourceUUID varchar(255) NOT NULL, ResourceType varchar(255) NOT NULL, ReferenceUUID varchar(255) NOT NULL,
      ReferenceName varchar(255) NOT NULL, ReferenceType varchar(255) NOT NULL, Relationship varchar(255) NOT NULL, Payload longtext NOT NULL,
      PRIMARY KEY (ResourceUUID, ResourceType, ReferenceType), KEY referencefilter (ResourceType, ReferenceUUID, ReferenceType)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
    CREATE TABLE run_metrics (RunUUID varchar(255) NOT NULL, NodeID varchar(255) NOT NULL, Name varchar(255) NOT NULL, NumberValue double DEFAULT NULL,
      Format varchar(255) DEFAULT NULL, Payload longtext NOT NULL, PRIMARY KEY (RunUUID, NodeID, Name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
    CREATE TABLE tasks (UUID varchar(255) NOT NULL PRIMARY KEY, Namespace varchar(255) NOT NULL, PipelineName varchar(255) NOT NULL,
      RunUUID varchar(255) NOT NULL, MLMDExecutionID varchar(255) NOT NULL, CreatedTimestamp bigint NOT NULL, FinishedTimestamp bigint DEFAULT NULL,
      Fingerprint varchar(255) NOT NULL, PodName varchar(255) NOT NULL DEFAULT '', StartedInSec bigint DEFAULT 0, Name varchar(255) DEFAULT '',
      ParentTaskUUID varchar(255) DEFAULT NULL, State varchar(64) DEFAULT NULL, StateHistory longtext, MLMDInputs longtext, MLMDOutputs longtext,
      ChildrenPods longtext, Payload longtext, KEY idx_tasks_run (RunUUID)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
    CREATE TABLE db_statuses (HaveSamplesLoaded tinyint(1) NOT NULL PRIMARY KEY) ENGINE=InnoDB;
    CREATE TABLE default_experiments (DefaultExperimentId varchar(255) NOT NULL PRIMARY KEY) ENGINE=InnoDB;
    CREATE TABLE Type (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, name varchar(255) NOT NULL, version varchar(255) DEFAULT NULL,
      type_kind tinyint(1) NOT NULL, description text, input_type text, output_type text, external_id varchar(255) DEFAULT NULL,
      KEY idx_type_name (name)) ENGINE=InnoDB;
    CREATE TABLE TypeProperty (type_id int NOT NULL, name varchar(255) NOT NULL, data_type int DEFAULT NULL, PRIMARY KEY (type_id, name)) ENGINE=InnoDB;
    CREATE TABLE ParentType (type_id int NOT NULL, parent_type_id int NOT NULL, PRIMARY KEY (type_id, parent_type_id)) ENGINE=InnoDB;
    CREATE TABLE Artifact (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, type_id int NOT NULL, uri text, state int DEFAULT NULL, name varchar(255) DEFAULT NULL,
      external_id varchar(255) DEFAULT NULL, create_time_since_epoch bigint NOT NULL DEFAULT 0, last_update_time_since_epoch bigint NOT NULL DEFAULT 0,
      UNIQUE KEY UniqueArtifactTypeName (type_id, name), KEY idx_artifact_uri (uri(255)), KEY idx_artifact_create_time (create_time_since_epoch)) ENGINE=InnoDB;
    CREATE TABLE ArtifactProperty (artifact_id int NOT NULL, name varchar(255) NOT NULL, is_custom_property tinyint(1) NOT NULL,
      int_value int DEFAULT NULL, double_value double DEFAULT NULL, string_value mediumtext, byte_value mediumblob, proto_value mediumblob,
      bool_value tinyint(1) DEFAULT NULL, PRIMARY KEY (artifact_id, name, is_custom_property)) ENGINE=InnoDB;
    CREATE TABLE Execution (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, type_id int NOT NULL, last_known_state int DEFAULT NULL,
      name varchar(255) DEFAULT NULL, external_id varchar(255) DEFAULT NULL, create_time_since_epoch bigint NOT NULL DEFAULT 0,
      last_update_time_since_epoch bigint NOT NULL DEFAULT 0, UNIQUE KEY UniqueExecutionTypeName (type_id, name),
      KEY idx_execution_create_time (create_time_since_epoch)) ENGINE=InnoDB;
    CREATE TABLE ExecutionProperty (execution_id int NOT NULL, name varchar(255) NOT NULL, is_custom_property tinyint(1) NOT NULL,
      int_value int DEFAULT NULL, double_value double DEFAULT NULL, string_value mediumtext, byte_value mediumblob, proto_value mediumblob,
      bool_value tinyint(1) DEFAULT NULL, PRIMARY KEY (execution_id, name, is_custom_property)) ENGINE=InnoDB;
    CREATE TABLE Context (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, type_id int NOT NULL, name varchar(255) NOT NULL,
      external_id varchar(255) DEFAULT NULL, create_time_since_epoch bigint NOT NULL DEFAULT 0, last_update_time_since_epoch bigint NOT NULL DEFAULT 0,
      UNIQUE KEY type_id (type_id, name)) ENGINE=InnoDB;
    CREATE TABLE ContextProperty (context_id int NOT NULL, name varchar(255) NOT NULL, is_custom_property tinyint(1) NOT NULL,
      int_value int DEFAULT NULL, double_value double DEFAULT NULL, string_value mediumtext, byte_value mediumblob, proto_value mediumblob,
      bool_value tinyint(1) DEFAULT NULL, PRIMARY KEY (context_id, name, is_custom_property)) ENGINE=InnoDB;
    CREATE TABLE ParentContext (context_id int NOT NULL, parent_context_id int NOT NULL, PRIMARY KEY (context_id, parent_context_id),
      KEY idx_parentcontext_parent_context_id (parent_context_id)) ENGINE=InnoDB;
    CREATE TABLE Event (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, artifact_id int NOT NULL, execution_id int NOT NULL, type int NOT NULL,
      milliseconds_since_epoch bigint DEFAULT NULL, UNIQUE KEY UniqueEvent (artifact_id, execution_id, type),
      KEY idx_event_execution_id (execution_id)) ENGINE=InnoDB;
    CREATE TABLE EventPath (event_id int NOT NULL, is_index_step tinyint(1) NOT NULL, step_index int DEFAULT NULL, step_key text,
      KEY idx_eventpath_event_id (event_id)) ENGINE=InnoDB;
    CREATE TABLE Attribution (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, context_id int NOT NULL, artifact_id int NOT NULL,
      UNIQUE KEY context_id (context_id, artifact_id)) ENGINE=InnoDB;
    CREATE TABLE Association (id int NOT NULL AUTO_INCREMENT PRIMARY KEY, context_id int NOT NULL, execution_id int NOT NULL,
      UNIQUE KEY context_id (context_id, execution_id)) ENGINE=InnoDB;
    CREATE TABLE MLMDEnv (schema_version int NOT NULL PRIMARY KEY) ENGINE=InnoDB;"
  # n runs, 8 tasks (executions) per run, 3 artifacts per task, properties on each.
  local manifest="REPEAT(CONCAT('{\"apiVersion\":\"argoproj.io/v1alpha1\",\"kind\":\"Workflow\",\"step\":', seq, '}'), 40)"
  my "$db" -e "
    INSERT INTO db_statuses VALUES (1); INSERT INTO MLMDEnv VALUES (10);
    INSERT INTO experiments SELECT MD5(CONCAT('e', seq)), CONCAT('exp-', seq), 'experiment', 1700000000 + seq, CONCAT('team-', seq % 8), 'AVAILABLE' FROM seq_1_to_50;
    INSERT INTO default_experiments VALUES (MD5('e1'));
    INSERT INTO pipelines SELECT MD5(CONCAT('p', seq)), 1700000000 + seq, CONCAT('pipeline-', seq), 'a pipeline', '[]', 'READY', MD5(CONCAT('v', seq)), CONCAT('team-', seq % 8) FROM seq_1_to_100;
    INSERT INTO pipeline_versions SELECT MD5(CONCAT('v', seq)), 1700000000 + seq, CONCAT('v', seq), '[]', MD5(CONCAT('p', 1 + seq % 100)), 'READY', NULL, 'version',
      REPEAT(CONCAT('pipelineSpec: step ', seq, '\n'), 100), CONCAT('minio://pipelines/', seq) FROM seq_1_to_400;
    INSERT INTO jobs SELECT MD5(CONCAT('j', seq)), CONCAT('job-', seq), CONCAT('job-', seq), CONCAT('team-', seq % 8), 'pipeline-runner', '', 10, 0,
      1700000000 + seq, 1700000000 + seq, 1, NULL, '0 0 * * *', 'Enabled', MD5(CONCAT('e', 1 + seq % 50)), NULL, $manifest, '[]', NULL, NULL FROM seq_1_to_200;
    INSERT INTO run_details SELECT MD5(CONCAT('r', seq)), MD5(CONCAT('e', 1 + seq % 50)), CONCAT('run-', seq), CONCAT('run-', seq), 'AVAILABLE',
      CONCAT('team-', seq % 8), 'pipeline-runner', '', 1700000000 + seq, 1700000000 + seq, 1700000100 + seq, 'Succeeded', MD5(CONCAT('p', 1 + seq % 100)),
      CONCAT('pipeline-', 1 + seq % 100), NULL, $manifest, '[]', NULL, NULL, '{}', $manifest, NULL, 'SUCCEEDED', '[]', seq, seq FROM seq_1_to_$n;
    INSERT INTO resource_references SELECT MD5(CONCAT('r', seq)), 'Run', MD5(CONCAT('e', 1 + seq % 50)), CONCAT('exp-', 1 + seq % 50), 'Experiment', 'Owner', '{}' FROM seq_1_to_$n;
    INSERT INTO resource_references SELECT MD5(CONCAT('r', seq)), 'Run', MD5(CONCAT('v', 1 + seq % 400)), CONCAT('v', 1 + seq % 400), 'PipelineVersion', 'Creator', '{}' FROM seq_1_to_$n;
    INSERT INTO run_metrics SELECT MD5(CONCAT('r', r.seq)), CONCAT('node-', m.seq), CONCAT('metric-', m.seq), SIN(r.seq + m.seq), 'RAW', '{}' FROM seq_1_to_$n r, seq_1_to_4 m;
    INSERT INTO tasks SELECT MD5(CONCAT('t', r.seq, '-', t.seq)), CONCAT('team-', r.seq % 8), CONCAT('pipeline-', 1 + r.seq % 100), MD5(CONCAT('r', r.seq)),
      (r.seq - 1) * 8 + t.seq, 1700000000 + r.seq, 1700000100 + r.seq, MD5(CONCAT('f', r.seq, t.seq)), CONCAT('run-', r.seq, '-task-', t.seq), 1700000000 + r.seq,
      CONCAT('task-', t.seq), NULL, 'SUCCEEDED', '[]', '{}', '{}', '[]', '{}' FROM seq_1_to_$n r, seq_1_to_8 t;
    INSERT INTO Type (id, name, version, type_kind) SELECT seq, CONCAT('system.Type', seq), NULL, seq % 3 FROM seq_1_to_30;
    INSERT INTO TypeProperty SELECT t.seq, CONCAT('prop', p.seq), 3 FROM seq_1_to_30 t, seq_1_to_5 p;
    INSERT INTO ParentType SELECT seq, 1 FROM seq_2_to_30;
    INSERT INTO Execution SELECT seq, 1 + seq % 30, 3, CONCAT('exec-', seq), NULL, 1700000000000 + seq, 1700000000000 + seq FROM seq_1_to_$(( n * 8 ));
    INSERT INTO ExecutionProperty SELECT e.seq, CONCAT('prop', p.seq), p.seq % 2, NULL, NULL, CONCAT('value-', e.seq, '-', p.seq), NULL, NULL, NULL
      FROM seq_1_to_$(( n * 8 )) e, seq_1_to_4 p;
    INSERT INTO Artifact SELECT seq, 1 + seq % 30, CONCAT('minio://mlpipeline/artifacts/run/', seq), 2, CONCAT('artifact-', seq), NULL, 1700000000000 + seq, 1700000000000 + seq
      FROM seq_1_to_$(( n * 24 ));
    INSERT INTO ArtifactProperty SELECT a.seq, CONCAT('prop', p.seq), 1, NULL, SIN(a.seq), CONCAT('display-', a.seq), NULL, NULL, NULL
      FROM seq_1_to_$(( n * 24 )) a, seq_1_to_2 p;
    INSERT INTO Context SELECT seq, 1 + seq % 30, CONCAT('run-', seq), NULL, 1700000000000 + seq, 1700000000000 + seq FROM seq_1_to_$n;
    INSERT INTO ContextProperty SELECT seq, 'namespace', 1, NULL, NULL, CONCAT('team-', seq % 8), NULL, NULL, NULL FROM seq_1_to_$n;
    INSERT INTO ParentContext SELECT seq, 1 + seq % 50 FROM seq_51_to_$n;
    INSERT INTO Event SELECT seq, seq, 1 + (seq - 1) DIV 3, 1 + seq % 4, 1700000000000 + seq FROM seq_1_to_$(( n * 24 ));
    INSERT INTO EventPath SELECT seq, 0, NULL, CONCAT('output_', seq % 3) FROM seq_1_to_$(( n * 24 ));
    INSERT INTO Attribution SELECT seq, 1 + (seq - 1) DIV 24, seq FROM seq_1_to_$(( n * 24 ));
    INSERT INTO Association SELECT seq, 1 + (seq - 1) DIV 8, seq FROM seq_1_to_$(( n * 8 ));"
  my "$db" -e "ANALYZE TABLE run_details, tasks, Artifact, Event, Execution" >/dev/null
}
