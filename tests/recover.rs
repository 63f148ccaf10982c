//! `amlmigrate recover` end to end, the real binary in the upgrade's lab (tests/common/upgrade.rs)
//! with the real MariaDB, PostgreSQL and MLflow 2.6 database: the 1.3 world is snapshotted and
//! upgraded, then its data is thrown away (the job-record and MLflow databases, the MLflow 3.1.1
//! tables and artifacts, every user namespace with its objects), leaving an empty 1.4 world;
//! the recovery brings back what the snapshot holds, counts and objects compared.

mod common;

use std::collections::BTreeSet;

use common::pg::psql;
use common::upgrade::*;
use common::*;
use fakekube::FakeKube;
use serde_json::Value;

const USER_KINDS: [(&str, &str); 6] = [
    ("v1", "PersistentVolumeClaim"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("kubeflow.org/v1", "Notebook"),
];

/// `kind ns/name` of every object of the user namespaces (the Profiles' names), with a PVC's volume.
fn user_objects(fk: &FakeKube) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in fk.list("kubeflow.org/v1", "Profile", None) {
        let ns = p["metadata"]["name"].as_str().unwrap().to_string();
        out.insert(format!("Profile {ns}"));
        if fk.get("v1", "Namespace", None, &ns).is_some() {
            out.insert(format!("Namespace {ns}"));
        }
        for (av, kind) in USER_KINDS {
            for o in fk.list(av, kind, Some(&ns)) {
                let mut line = format!("{kind} {ns}/{}", o["metadata"]["name"].as_str().unwrap());
                if kind == "PersistentVolumeClaim" {
                    line.push_str(&format!(
                        " → {} {}",
                        o["spec"]["volumeName"].as_str().unwrap_or("-"),
                        o["status"]["phase"].as_str().unwrap_or("-")
                    ));
                }
                out.insert(line);
            }
        }
    }
    out
}

/// Every user namespace gone with its objects, as on a cluster rebuilt from nothing.
fn lose_user_namespaces(fk: &FakeKube) {
    for p in fk.list("kubeflow.org/v1", "Profile", None) {
        let ns = p["metadata"]["name"].as_str().unwrap().to_string();
        for (av, kind) in USER_KINDS {
            for o in fk.list(av, kind, Some(&ns)) {
                fk.delete(av, kind, Some(&ns), o["metadata"]["name"].as_str().unwrap());
            }
        }
        fk.delete("kubeflow.org/v1", "Profile", None, &ns);
        fk.delete("v1", "Namespace", None, &ns);
    }
}

fn pg_counts(db: &str) -> String {
    psql(
        db,
        "SELECT (SELECT count(*) FROM experiments) || ' ' || (SELECT count(*) FROM runs) || ' ' || (SELECT count(*) FROM metrics)",
    )
}

/// The entries of the latest recovery's journal.
fn recover_journal(lab: &Lab) -> Vec<Value> {
    let runs = lab.dir.path().join("repo/runs");
    let mut dirs: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("recover.jsonl"))
        .filter(|p| p.exists())
        .collect();
    dirs.sort();
    dirs.last()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn recover(lab: &Lab, args: &[&str]) -> Run {
    lab.recover(args)
}

fn recover_env(lab: &Lab, args: &[&str], more: &[(&str, &str)]) -> Run {
    lab.recover_env(args, more)
}

#[test]
fn a_lost_cluster_comes_back_from_the_snapshot_with_its_databases_mlflow_and_user_namespaces() {
    let lab = Lab::new(LabOptions::default());
    // The snapshot carries the Secrets, encrypted to this key.
    let identity = lab.dir.path().join("age-key.txt");
    let recipient = {
        use age::secrecy::ExposeSecret;
        let id = age::x25519::Identity::generate();
        std::fs::write(&identity, format!("{}\n", id.to_string().expose_secret())).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&identity, std::fs::Permissions::from_mode(0o600)).unwrap();
        id.to_public().to_string()
    };
    // The lab's repository is plain (`repo init` without recipients), on purpose: only the
    // Secrets are encrypted.
    lab.edit_config(|c| {
        c.replacen(
            "[snapshot]\n",
            &format!("[snapshot]\nencrypt_to = [\"{recipient}\"]\nunencrypted_repo = true\n"),
            1,
        )
    });
    // Enough job records that the recovery is still restoring them when it is killed.
    sql(
        Some(&lab.aml.name),
        "CREATE TABLE job_events (id INT PRIMARY KEY, v VARCHAR(64)); \
         INSERT INTO job_events SELECT seq, REPEAT('e', 60) FROM seq_1_to_400000",
    );
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let snapshot = lab
        .journal()
        .iter()
        .find_map(|e| e["facts"]["snapshot"].as_str().map(str::to_string))
        .unwrap();
    // What the upgraded cluster held.
    let aml_before = checksums(&lab.aml.name);
    let pg_before = pg_counts(&lab.pg.name);
    assert_eq!(pg_before.trim(), "3 6 300", "{pg_before}");
    let objects_before = user_objects(&lab.fk);
    let secret = |fk: &FakeKube| {
        fk.get("v1", "Secret", Some("team-a"), "aml-image-builder-secret")
            .map(|s| s["data"].clone())
    };
    let secret_before = secret(&lab.fk);
    assert!(
        objects_before.contains("Secret team-a/aml-image-builder-secret"),
        "{objects_before:?}"
    );
    assert!(
        objects_before
            .iter()
            .any(|o| o.starts_with("PersistentVolumeClaim team-a/") && o.ends_with(" Bound")),
        "{objects_before:?}"
    );
    let artifacts_3 = lab.dir.path().join("mlartifacts-3");
    assert!(artifacts_3.join("1/run-0/artifacts/model/MLmodel").exists());

    // Everything lost: the databases, MLflow 3.1.1's tables and artifacts, the user namespaces.
    sql(None, &format!("DROP DATABASE `{}`", lab.aml.name));
    sql(
        None,
        &format!("DROP DATABASE `{}`", lab.mlflow.as_ref().unwrap().name),
    );
    psql(
        &lab.pg.name,
        "DROP SCHEMA public CASCADE; CREATE SCHEMA public",
    );
    std::fs::remove_dir_all(&artifacts_3).unwrap();
    lose_user_namespaces(&lab.fk);
    assert!(user_objects(&lab.fk).is_empty());

    // A dry run shows every change and writes nothing.
    let writes = lab.writes();
    let id = identity.to_str().unwrap();
    // The identity comes from AMLMIGRATE_IDENTITY here, as --identity would give it: the
    // Secret below is restored only with it.
    let dry = recover_env(
        &lab,
        &["--dry-run", &snapshot],
        &[("AMLMIGRATE_IDENTITY", id)],
    );
    assert_eq!(dry.code, 0, "{dry:?}");
    for want in [
        "restore-databases  to do".to_string(),
        format!(
            "change: MySQL aml/{}: 3 of 3 table(s) empty or missing → restored from snapshot {snapshot}",
            lab.aml.name
        ),
        "migrate-mlflow     to do".to_string(),
        "restore-profiles   to do".to_string(),
        "change: Profile team-a: (none) → created from the snapshot".to_string(),
        "PersistentVolumeClaim team-a/".to_string(),
        "change: Secret team-a/aml-image-builder-secret: (none) → created from the snapshot"
            .to_string(),
    ] {
        assert!(dry.stdout.contains(&want), "{want:?} not in {dry:?}");
    }
    assert_eq!(lab.writes(), writes, "the dry run wrote");
    assert!(tables(&lab.aml.name).is_empty());

    // Without a terminal and without --yes, the first write is refused, naming how to go on.
    let r = recover(&lab, &[&snapshot]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("--yes"), "{r:?}");

    // Killed (-9) while it restores the job records: the same command resumes it.
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["recover", "--yes", "--quiet", "--config", lab.cfg()])
        .args(["--identity", identity.to_str().unwrap(), "--notebooks"])
        .stderr(std::process::Stdio::null());
    for (k, v) in lab.env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    common::cluster::wait_until("the recovery restores the databases", || {
        recover_journal(&lab)
            .iter()
            .any(|e| e["step"] == "restore-databases" && e["event"] == "started")
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = recover_journal(&lab);
    assert!(
        !killed
            .iter()
            .any(|e| e["step"] == "run" && e["event"] == "finished"),
        "the recovery finished before it was killed: {killed:?}"
    );
    let r = recover(&lab, &["--yes", "--identity", id, "--notebooks"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("(resumed) from snapshot"), "{r:?}");
    let events: Vec<String> = recover_journal(&lab)
        .iter()
        .filter(|e| e["step"] == "run")
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    // Declined at the prompt, killed, resumed, finished: one recovery.
    assert_eq!(
        events,
        ["started", "stopped", "resumed", "resumed", "finished"]
    );
    assert_eq!(checksums(&lab.aml.name), aml_before);
    assert_eq!(pg_counts(&lab.pg.name), pg_before);
    assert!(artifacts_3.join("1/run-0/artifacts/model/MLmodel").exists());
    // Everything the upgraded cluster had, and the one Secret its snapshot (1.3) held that the
    // 1.4 cluster had no longer.
    let mut expected = objects_before.clone();
    expected.insert("Secret team-b/aml-image-builder-secret".into());
    assert_eq!(user_objects(&lab.fk), expected);
    assert_eq!(secret(&lab.fk), secret_before);
    // The report: the verification passed, the counts equal.
    let rep = lab.report();
    let steps: Vec<&str> = rep["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "restore-global",
            "restore-databases",
            "migrate-mlflow",
            "restore-profiles",
            "global-settings",
            "enable-features",
            "verify"
        ]
    );
    // The global cluster kept its dex ConfigMap and ServiceMesh: nothing to put back or add.
    for s in rep["steps"].as_array().unwrap() {
        if s["step"] == "restore-global" || s["step"] == "global-settings" {
            assert_eq!(s["outcome"], "already done", "{s}");
        }
    }
    let verify = &rep["steps"][6];
    assert!(
        verify["checked"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l.as_str().unwrap().starts_with("ok")
                || l.as_str().unwrap().starts_with("skip")),
        "{verify}"
    );
    for c in rep["counts"].as_array().unwrap() {
        assert_eq!(c["before"], c["after"], "{c}");
    }
    let counted: Vec<&str> = rep["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["what"].as_str().unwrap())
        .collect();
    assert!(
        counted.iter().any(|c| c.contains("finetune_jobs"))
            && counted.iter().any(|c| c.contains("MLflow metric points"))
            && counted.contains(&"Profiles"),
        "{counted:?}"
    );

    // Again: everything is there, nothing is applied twice.
    let writes = lab.writes();
    let again = recover(&lab, &["--yes", "--json", "--identity", id, "--notebooks"]);
    assert_eq!(again.code, 0, "{again:?}");
    let v: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(v["outcome"]["applied"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(lab.writes(), writes);

    // Rows that are not the snapshot's are never overwritten: the step is BLOCKED, naming the
    // table and the command that would replace them.
    sql(
        Some(&lab.aml.name),
        "INSERT INTO datasets VALUES (3, 's3://d/3')",
    );
    let r = recover(&lab, &["--yes", &snapshot]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "recovery step restore-databases cannot run: aml/{}.datasets holds 3 rows, the snapshot 2",
            lab.aml.name
        )) && r.stderr.contains("--replace"),
        "{r:?}"
    );
    assert_eq!(
        sql(Some(&lab.aml.name), "SELECT COUNT(*) FROM datasets").trim(),
        "3"
    );
}
