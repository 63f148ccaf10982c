//! MLflow 2.6 (MySQL) → 3.1.1 (PostgreSQL) against the real thing: a real MLflow 2.6.0 server
//! seeded through the real client, the migration, then a real MLflow 3.1.1 server on the result
//! that must serve exactly what the 2.6 server served.
//!
//! `scripts/mlflow-env.sh` installs both MLflow versions into cached venvs (minutes, once).

mod common;

use common::gate::{TableGate, signal, wait_for, wait_until_blocked_in};
use common::mlflow::*;
use common::pg::{PgDb, psql};
use common::*;
use std::process::Command;

/// The test server trusts loopback, so a password in the URL is accepted and ignored: every
/// migration passes one, and none of its output may show it.
const PG_SECRET: &str = "Pg-S3cret-never-shown";

fn migrate(from_db: &str, to: &PgDb) -> Run {
    let to = to.url().replace(
        "postgres://postgres@",
        &format!("postgres://postgres:{PG_SECRET}@"),
    );
    let r = amlmigrate(&[
        "mlflow",
        "migrate",
        "--from",
        &format!("{MYSQL}/{from_db}"),
        "--to",
        &to,
        "--json",
    ]);
    assert!(
        !r.all().contains(PG_SECRET),
        "the PostgreSQL password leaked: {r:?}"
    );
    r
}

#[test]
fn mlflow_3_1_1_serves_exactly_what_2_6_served_after_migration() {
    let (v26, v311) = venvs().clone();
    let tmp = tempfile::tempdir().unwrap();
    let artifacts = tmp.path().join("artifacts");
    let src = TestDb::create("mlf_src");
    let before = {
        let server = Server::start(
            &v26,
            &format!("mysql+pymysql://root@127.0.0.1:3306/{}", src.name),
            &artifacts,
        );
        python(&v26, &[harness(), "seed", &server.url]);
        dump(&server, &tmp.path().join("before.json"))
    };
    assert_eq!(before["runs"].as_array().unwrap().len(), 10);

    let files: usize = before["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["artifacts"].as_object().unwrap().len())
        .sum();
    assert!(files >= 9, "the seeded runs have artifacts: {files}");

    // Into an empty database: the tool creates MLflow 3.1.1's schema, and copies the artifact
    // tree to the folder the 3.1.1 server will serve.
    let target = PgDb::new("mlf_dst");
    let artifacts_311 = tmp.path().join("artifacts-3.1.1");
    let r = amlmigrate(&[
        "mlflow",
        "migrate",
        "--from",
        &format!("{MYSQL}/{}", src.name),
        "--to",
        &target.url(),
        "--json",
        "--artifacts-from",
        artifacts.to_str().unwrap(),
        "--artifacts-to",
        artifacts_311.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["migrate"]["outcome"], "migrated");
    assert_eq!(j["migrate"]["schema_created"], true);
    assert!(
        j["migrate"]["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["equal"] == true)
    );
    assert!(j["migrate"]["metric_points"].as_u64().unwrap() > 900);
    assert_eq!(
        j["migrate"]["artifacts"]["files"].as_u64().unwrap() as usize,
        files
    );

    // A re-run finds the same data and changes nothing.
    let again = migrate(&src.name, &target);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("\"already migrated\""), "{again:?}");
    let v = amlmigrate(&[
        "mlflow",
        "verify",
        "--from",
        &format!("{MYSQL}/{}", src.name),
        "--to",
        &target.url(),
    ]);
    assert_eq!(v.code, 0, "{v:?}");

    // From a snapshot of the 2.6 database instead of the live server: the same rows arrive
    // (verified against the live source).
    let repo = tmp.path().join("repo");
    ok(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
        "--mlflow-artifacts",
        artifacts.to_str().unwrap(),
        "--quiet",
    ]);
    ok(&[
        "verify",
        "--repo",
        repo.to_str().unwrap(),
        "latest",
        "--quiet",
    ]);
    let from_snapshot = PgDb::new("mlf_snap");
    let unpacked = tmp.path().join("artifacts-from-snapshot");
    let r = amlmigrate(&[
        "mlflow",
        "migrate",
        "--from-snapshot",
        repo.to_str().unwrap(),
        "latest",
        "--to",
        &from_snapshot.url(),
        "--json",
        "--artifacts-to",
        unpacked.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        tree(&unpacked),
        tree(&artifacts),
        "the snapshot's artifacts differ from the originals"
    );
    assert!(
        r.stdout.contains("\"migrated\"") && r.stdout.contains(&src.name),
        "{r:?}"
    );
    let v = amlmigrate(&[
        "mlflow",
        "verify",
        "--from",
        &format!("{MYSQL}/{}", src.name),
        "--to",
        &from_snapshot.url(),
    ]);
    assert_eq!(v.code, 0, "{v:?}");

    // The schema equals the one MLflow 3.1.1 creates itself.
    let by_mlflow = PgDb::new("mlf_fresh");
    drop(Server::start(
        &v311,
        &by_mlflow.url().replace("postgres://", "postgresql://"),
        &artifacts,
    ));
    assert_eq!(
        schema(&target.name),
        schema(&by_mlflow.name),
        "schema differs from MLflow 3.1.1's own"
    );

    // A real 3.1.1 server serves the same experiments, runs, times, params, tags, metric
    // histories (NaN and infinities included), inputs, models, versions, aliases and artifact
    // bytes (served from the copied tree).
    {
        let server = Server::start(
            &v311,
            &target.url().replace("postgres://", "postgresql://"),
            &artifacts_311,
        );
        let after = dump(&server, &tmp.path().join("after.json"));
        assert_eq!(
            after, before,
            "MLflow 3.1.1 serves something else than 2.6 did"
        );
        // Sequences moved: a new experiment gets the next id, and takes a run.
        let created = server.post("experiments/create", r#"{"name":"after-migration"}"#);
        let max_id = before["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().parse::<i64>().unwrap())
            .max()
            .unwrap();
        assert_eq!(created["experiment_id"], (max_id + 1).to_string());
        server.post(
            "runs/create",
            &format!(r#"{{"experiment_id":"{}","start_time":1}}"#, max_id + 1),
        );
    }

    // `mlflow db upgrade` has nothing to do on the result.
    let before_upgrade = schema(&target.name);
    let out = Command::new(v311.join("bin/mlflow"))
        .args([
            "db",
            "upgrade",
            &target.url().replace("postgres://", "postgresql://"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(schema(&target.name), before_upgrade);

    // Into a database MLflow 3.1.1 created (only its Default experiment): the source's own
    // experiment 0 replaces it.
    let r = migrate(&src.name, &by_mlflow);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("\"schema_created\": false"), "{r:?}");
    assert_eq!(
        psql(&by_mlflow.name, "SELECT count(*) FROM experiments").trim(),
        "4"
    );

    // Artifact locations move by prefix, and verify compares against the rewritten source.
    let moved = PgDb::new("mlf_s3");
    let rule = "mlflow-artifacts:/=s3://aml-mlflow/artifacts/";
    let from = format!("{MYSQL}/{}", src.name);
    let r = amlmigrate(&[
        "mlflow",
        "migrate",
        "--from",
        &from,
        "--to",
        &moved.url(),
        "--rewrite-artifact-uri",
        rule,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let uris = psql(
        &moved.name,
        "SELECT artifact_uri FROM runs UNION ALL SELECT artifact_location FROM experiments",
    );
    assert!(
        uris.lines()
            .all(|u| u.starts_with("s3://aml-mlflow/artifacts/")),
        "{uris}"
    );
    let v = amlmigrate(&[
        "mlflow",
        "verify",
        "--from",
        &from,
        "--to",
        &moved.url(),
        "--rewrite-artifact-uri",
        rule,
    ]);
    assert_eq!(v.code, 0, "{v:?}");
    let v = amlmigrate(&["mlflow", "verify", "--from", &from, "--to", &moved.url()]);
    assert_eq!(v.code, 3, "without the rule the URIs differ: {v:?}");
    assert!(
        v.stdout.contains("DIFFERENT") && v.stderr.contains("runs"),
        "{v:?}"
    );

    // Text PostgreSQL cannot hold is named, never changed, and nothing is written.
    sql(
        Some(&src.name),
        "UPDATE params SET value = CONCAT('bad', CHAR(0)) WHERE `key` = 'epochs' LIMIT 1",
    );
    let nul_target = PgDb::new("mlf_nul");
    let r = migrate(&src.name, &nul_target);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("params row (") && r.stderr.contains("column value holds a NUL byte"),
        "{r:?}"
    );
    assert_eq!(
        psql(
            &nul_target.name,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        .trim(),
        "0"
    );
}

#[test]
fn an_unsupported_source_revision_is_refused_naming_what_is_supported() {
    let src = TestDb::create("mlf_rev");
    sql(
        Some(&src.name),
        "CREATE TABLE alembic_version (version_num VARCHAR(32)); INSERT INTO alembic_version VALUES ('0584bdc529eb')",
    );
    let target = PgDb::new("mlf_rev");
    let r = migrate(&src.name, &target);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("0584bdc529eb") && r.stderr.contains("7f2a7d5fae7d (MLflow 2.6.0)"),
        "{r:?}"
    );
}

#[test]
fn kill_9_mid_copy_leaves_the_target_untouched_and_a_rerun_completes() {
    let (v26, _) = venvs().clone();
    let tmp = tempfile::tempdir().unwrap();
    let src = TestDb::create("mlf_kill");
    {
        // An MLflow 2.6 schema and one run, then many points written straight into the table.
        let server = Server::start(
            &v26,
            &format!("mysql+pymysql://root@127.0.0.1:3306/{}", src.name),
            tmp.path().join("a"),
        );
        server.post("runs/create", r#"{"experiment_id":"0","start_time":1}"#);
    }
    sql(
        Some(&src.name),
        "INSERT INTO metrics (`key`, value, timestamp, run_uuid, step, is_nan) \
         SELECT 'loss', seq / 3, seq, (SELECT run_uuid FROM runs LIMIT 1), seq, 0 FROM seq_1_to_400000",
    );
    let target = PgDb::new("mlf_kill");
    // The migration's source read waits at a lock the test holds on `metrics`: by then its
    // PostgreSQL transaction has begun and created every table, and waits for more.
    let gate = TableGate::write(&src.name, "metrics");
    let mut child = Command::new(bin())
        .args([
            "mlflow",
            "migrate",
            "--from",
            &format!("{MYSQL}/{}", src.name),
            "--to",
            &target.url(),
            "--quiet",
        ])
        .spawn()
        .unwrap();
    wait_until_blocked_in(&src.name, "%FROM `metrics`%");
    let backend = wait_for("the target's transaction to wait for the migration", || {
        let pid = psql(
            "postgres",
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = '{}' AND state = 'idle in transaction'",
                target.name
            ),
        );
        let pid = pid.trim().to_string();
        (!pid.is_empty()).then_some(pid)
    });
    // The target's backend is held still (it is idle, holding no shared lock), so the copy that
    // follows can never commit: whenever the kill lands, it lands mid-transaction.
    let stop = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &backend])
                .status()
                .unwrap()
                .success()
        )
    };
    stop("-STOP");
    gate.open();
    signal(&child, "-KILL");
    child.wait().unwrap();
    stop("-CONT");
    // PostgreSQL rolls the transaction back when its backend sees the client gone.
    wait_for("the killed migration's backend to end", || {
        let n = psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'",
                target.name
            ),
        );
        (n.trim() == "0").then_some(())
    });
    assert_eq!(
        psql(
            &target.name,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        .trim(),
        "0",
        "a killed migration left tables behind"
    );
    let r = migrate(&src.name, &target);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        psql(&target.name, "SELECT count(*) FROM metrics").trim(),
        "400000"
    );
}
