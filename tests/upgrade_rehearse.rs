//! `upgrade rehearse` end to end, the real binary in the upgrade's lab (tests/common/upgrade.rs)
//! with the real MariaDB and PostgreSQL: the snapshot's databases restored and migrated into
//! scratch copies, checked, timed, and every copy dropped; a failure the window would hit named
//! with its object and nothing left behind; leftovers of a killed rehearsal swept; `upgrade
//! plan` and `upgrade run` saying whether the snapshot they use was rehearsed.

mod common;

use common::pg::psql;
use common::upgrade::*;
use common::*;
use serde_json::Value;

/// Scratch copies of this lab's repository still on the servers (MariaDB and PostgreSQL).
fn scratch_left(repo_prefix: &str) -> Vec<String> {
    let like = repo_prefix.replace('_', "\\_");
    let mut out: Vec<String> = sql(
        None,
        &format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{like}%'"
        ),
    )
    .lines()
    .map(str::to_string)
    .collect();
    out.extend(
        psql(
            "postgres",
            &format!("SELECT datname FROM pg_database WHERE datname LIKE '{like}%'"),
        )
        .lines()
        .map(str::to_string),
    );
    out
}

/// `amlrehearse_<repo>_` from the names a rehearsal dropped.
fn repo_prefix(r: &Value) -> String {
    let first = r["dropped"][0]
        .as_str()
        .expect("a dropped copy")
        .to_string();
    let name = first.split_whitespace().nth(1).unwrap();
    let parts: Vec<&str> = name.splitn(3, '_').collect();
    format!("{}_{}_", parts[0], parts[1])
}

fn rehearse(lab: &Lab, extra: &[&str]) -> Run {
    let mut args = vec!["rehearse"];
    args.extend_from_slice(extra);
    lab.upgrade(&args)
}

#[test]
fn a_rehearsal_restores_and_migrates_scratch_copies_checks_and_times_them_and_leaves_none() {
    let lab = Lab::new(LabOptions::default());
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");

    // Before any rehearsal: the plan offers it, and the run warns before its first deletion.
    let plan = lab.upgrade(&["plan"]);
    assert!(
        plan.stdout.contains("no rehearsal was made for snapshot")
            && plan.stdout.contains("amlmigrate upgrade rehearse"),
        "{plan:?}"
    );
    let r = lab.upgrade(&["run", "--yes", "--until", "delete-notebooks"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("WARNING: no rehearsal was made for snapshot"),
        "{r:?}"
    );

    let r = rehearse(&lab, &["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let reh = &v["rehearsal"];
    assert_eq!(reh["ok"], true);
    let steps: Vec<&str> = reh["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    let mlflow_db = &lab.mlflow.as_ref().unwrap().name;
    assert_eq!(
        steps,
        [
            format!("restore aml/{}", lab.aml.name).as_str(),
            format!("restore mlflow/{mlflow_db}").as_str(),
            "migrate-mlflow"
        ]
    );
    for s in reh["steps"].as_array().unwrap() {
        assert!(s["seconds"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["rows_per_second"].as_f64().unwrap() > 0.0, "{s}");
    }
    // The upgrade's checks on the copies: every table's rows, MLflow's checksums.
    let checked: Vec<&str> = reh["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(checked.iter().all(|l| l.starts_with("ok")), "{checked:?}");
    for want in [
        format!("ok   aml/{}.finetune_jobs: 250 rows restored", lab.aml.name),
        format!("ok   aml/{}.datasets: 2 rows restored", lab.aml.name),
        "ok   MLflow metrics: 300 rows, checksum equal to the 2.6 source".to_string(),
        "ok   every scratch copy dropped (3)".to_string(),
    ] {
        assert!(
            checked.iter().any(|l| l.starts_with(&want)),
            "{want:?} not in {checked:?}"
        );
    }
    let window = &reh["window"];
    assert!(window["data_seconds"].as_f64().unwrap() > 0.0);
    // At most: the data plus the lab's uninstall (20s) and install (20s) timeouts.
    let at_most = window["at_most_seconds"].as_f64().unwrap();
    assert!(
        (at_most - window["data_seconds"].as_f64().unwrap() - 40.0).abs() < 0.01,
        "{window}"
    );
    let prefix = repo_prefix(reh);
    assert!(prefix.starts_with("amlrehearse_"), "{prefix}");
    assert!(
        scratch_left(&prefix).is_empty(),
        "{:?}",
        scratch_left(&prefix)
    );
    // Its record and report, beside the upgrade's runs but not one of them.
    let id = reh["id"].as_str().unwrap();
    let dir = lab.dir.path().join("repo/runs").join(id);
    for f in ["rehearsal.json", "report.json", "report.md"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    assert!(!dir.join("journal.jsonl").exists());
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("finetune_jobs rows") && md.contains("| 250 | 250 | = |"),
        "{md}"
    );
    let st = lab.upgrade(&["status"]);
    assert!(st.stdout.contains("delete-notebooks   done"), "{st:?}");

    // The plan now names the passed rehearsal and its prediction instead of offering one.
    let plan = lab.upgrade(&["plan"]);
    assert!(
        plan.stdout
            .contains(&format!("ok   rehearsal {id} of snapshot"))
            && plan.stdout.contains("predicted data window"),
        "{plan:?}"
    );
    assert!(!plan.stdout.contains("no rehearsal was made"), "{plan:?}");

    // A rehearsal killed with -9 leaves copies; the next one drops them first, this
    // repository's only.
    let dead_my = format!("{prefix}dead00_aml");
    let dead_pg = format!("{prefix}dead00_mlflow");
    let other = "amlrehearse_ffffff_dead00_aml".to_string();
    sql(None, &format!("CREATE DATABASE `{dead_my}`"));
    sql(None, &format!("CREATE DATABASE IF NOT EXISTS `{other}`"));
    psql("postgres", &format!("CREATE DATABASE {dead_pg}"));
    let r = rehearse(&lab, &[]);
    sql(None, &format!("DROP DATABASE IF EXISTS `{other}`"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("an earlier rehearsal left behind")
            && r.stderr.contains(&dead_my)
            && r.stderr.contains(&dead_pg)
            && !r.stderr.contains(&other),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("predicted data window (first uninstall → data back)"),
        "{r:?}"
    );
    assert!(
        scratch_left(&prefix).is_empty(),
        "{:?}",
        scratch_left(&prefix)
    );
}

#[test]
fn a_rehearsal_that_would_fail_in_the_window_names_the_object_and_the_fix_and_leaves_nothing() {
    let lab = Lab::new(LabOptions::default());
    // Text PostgreSQL cannot hold, in MLflow 2.6's params.
    sql(
        Some(&lab.mlflow.as_ref().unwrap().name),
        "UPDATE params SET value = CONCAT('bad', CHAR(0)) LIMIT 1",
    );
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");

    // A scratch server where the user may not create databases: the grant is named.
    sql(
        None,
        "CREATE OR REPLACE USER 'amlrehearse_ro'@'%' IDENTIFIED BY 'Ro-S3cret-pw'; \
         GRANT SELECT ON *.* TO 'amlrehearse_ro'@'%'",
    );
    let pw = lab.dir.path().join("scratch-password");
    std::fs::write(&pw, "Ro-S3cret-pw\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = rehearse(
        &lab,
        &[
            "--scratch-mysql",
            "mysql://amlrehearse_ro@127.0.0.1:3306",
            "--scratch-mysql-password-file",
            pw.to_str().unwrap(),
        ],
    );
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "rehearsal: restoring database {} of MySQL source aml (as amlrehearse_",
            lab.aml.name
        )) && r
            .stderr
            .contains("on mysql://amlrehearse_ro@127.0.0.1:3306")
            && r.stderr.contains("denied")
            && r.stderr
                .contains("GRANT ALL ON `amlrehearse\\_%`.* TO the user"),
        "{r:?}"
    );
    assert!(
        !r.all().contains("Ro-S3cret") && r.stderr.contains("no scratch copy is left"),
        "{r:?}"
    );

    let r = rehearse(&lab, &["--json"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("rehearsal: migrating MLflow database")
            && r.stderr.contains("params row ")
            && r.stderr.contains("column value holds a NUL byte")
            && r.stderr.contains("no scratch copy is left"),
        "{r:?}"
    );
    // The record says it failed and what it dropped; nothing named like a copy is left.
    let runs = lab.dir.path().join("repo/runs");
    let mut records: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("rehearsal.json"))
        .filter(|p| p.exists())
        .collect();
    records.sort();
    assert_eq!(records.len(), 2, "{records:?}");
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(records.last().unwrap()).unwrap()).unwrap();
    assert_eq!(rec["ok"], false);
    assert!(rec["error"].as_str().unwrap().contains("NUL byte"));
    assert_eq!(rec["dropped"].as_array().unwrap().len(), 3, "{rec}");
    let prefix = repo_prefix(&rec);
    assert!(
        scratch_left(&prefix).is_empty(),
        "{:?}",
        scratch_left(&prefix)
    );
    // The plan and the run say the rehearsal failed.
    let plan = lab.upgrade(&["plan"]);
    assert!(
        plan.stdout.contains(&format!(
            "the rehearsal {} of snapshot",
            rec["id"].as_str().unwrap()
        )) && plan.stdout.contains("failed"),
        "{plan:?}"
    );
}

#[test]
fn ctrl_c_during_a_rehearsal_stops_it_and_drops_the_copies_it_made() {
    let lab = Lab::new(LabOptions::default());
    // Enough rows that the copy is still being filled when the operator presses Ctrl-C.
    sql(
        Some(&lab.aml.name),
        "CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(64)); \
         INSERT INTO big SELECT seq, REPEAT('x', 60) FROM seq_1_to_400000",
    );
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["upgrade", "rehearse", "--config", lab.cfg()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in lab.env() {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    // Its first copy exists: interrupt it as Ctrl-C does.
    let copy_of_aml = || {
        sql(
            None,
            &format!(
                "SELECT DISTINCT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'amlrehearse\\_%' AND TABLE_SCHEMA LIKE '%{}'",
                lab.aml.name
            ),
        )
        .trim()
        .to_string()
    };
    common::cluster::wait_until("a scratch copy exists", || !copy_of_aml().is_empty());
    // `amlrehearse_<repo>_…`: the copies of this lab's repository, whoever drops them (the
    // interrupted restore drops what it created, the rehearsal the rest).
    let copy = copy_of_aml();
    let parts: Vec<&str> = copy.splitn(3, '_').collect();
    let prefix = format!("{}_{}_", parts[0], parts[1]);
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted") && stderr.contains("no scratch copy is left"),
        "{stderr}"
    );
    let rec: Value = std::fs::read_dir(lab.dir.path().join("repo/runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("rehearsal.json"))
        .find(|p| p.exists())
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .expect("a rehearsal record");
    assert_eq!(rec["ok"], false);
    assert!(
        scratch_left(&prefix).is_empty(),
        "{:?}",
        scratch_left(&prefix)
    );
}
