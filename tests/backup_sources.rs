//! One snapshot holds every MySQL the article names, each a named source with its own server,
//! password and databases: the AML job records, Kubeflow Pipelines' MySQL (here a second, TLS-only
//! MariaDB) and MLflow 2.6's. `show` lists them, `restore --source` and `mlflow migrate
//! --from-source` choose one, and a snapshot of the one-unnamed-source format stays readable.

mod common;

use common::pg::PgDb;
use common::*;
use serde_json::Value;

fn tls_sql(ca: &str, q: &str) -> String {
    let args = ["-P3307", "--ssl", &format!("--ssl-ca={ca}")].map(String::from);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    sql_at(&a, None, q)
}

const SOURCE_PW: &str = "kfp-source-pw-9";

#[test]
fn one_snapshot_holds_named_sources_that_show_restore_and_mlflow_choose_from() {
    let ca = tls_server();
    let aml = TestDb::create("src_aml");
    sql(
        Some(&aml.name),
        "CREATE TABLE finetune_jobs (id INT PRIMARY KEY, s VARCHAR(8)); INSERT INTO finetune_jobs SELECT seq, 'ok' FROM seq_1_to_40",
    );
    let mlflow = TestDb::create("src_mlf");
    let artifacts = tempfile::tempdir().unwrap();
    common::upgrade::mlflow_26(&mlflow, artifacts.path());
    // Kubeflow Pipelines' MySQL: another server, another user with its own password.
    let (kfp1, kfp2) = (format!("{}_mlp", aml.name), format!("{}_cache", aml.name));
    tls_sql(
        &ca,
        &format!(
            "CREATE USER IF NOT EXISTS 'kfpsrc'@'%' IDENTIFIED BY '{SOURCE_PW}'; GRANT ALL PRIVILEGES ON *.* TO 'kfpsrc'@'%'; \
             CREATE DATABASE `{kfp1}`; CREATE TABLE `{kfp1}`.pipelines (id INT PRIMARY KEY); INSERT INTO `{kfp1}`.pipelines VALUES (1),(2),(3); \
             CREATE DATABASE `{kfp2}`; CREATE TABLE `{kfp2}`.cache (k INT PRIMARY KEY); INSERT INTO `{kfp2}`.cache VALUES (7)"
        ),
    );
    let kfp_url = format!("mysql://kfpsrc@127.0.0.1:3307?ssl-mode=verify-identity&ssl-ca={ca}");
    let (_tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap();
    let pw_file = _tmp.path().join("kfp-pw");
    std::fs::write(&pw_file, format!("{SOURCE_PW}\n")).unwrap();
    let backup_args = |kfp_dbs: &str| {
        vec![
            "backup".to_string(),
            "--init".into(),
            "--repo".into(),
            repo_s.into(),
            "--quiet".into(),
            "--mysql".into(),
            format!("aml={MYSQL}"),
            "--databases".into(),
            format!("aml={}", aml.name),
            "--mysql".into(),
            format!("kfp={kfp_url}"),
            "--databases".into(),
            format!("kfp={kfp_dbs}"),
            "--mysql-password-file".into(),
            format!("kfp={}", pw_file.display()),
            "--mysql".into(),
            format!("mlflow={MYSQL}"),
            "--databases".into(),
            format!("mlflow={}", mlflow.name),
        ]
    };
    let run = |args: &[String]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        amlmigrate(&a)
    };
    // A database missing in one source: refused naming the source, nothing written.
    let r = run(&backup_args(&format!("{kfp1},no_such_kfp_db")));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("MySQL source kfp")
            && r.stderr.contains("database no_such_kfp_db not found"),
        "{r:?}"
    );
    assert!(
        !repo.join("snapshots").exists()
            || std::fs::read_dir(repo.join("snapshots")).unwrap().count() == 0,
        "a refused backup wrote a snapshot folder"
    );
    let r = run(&backup_args(&format!("{kfp1},{kfp2}")));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.all().contains(SOURCE_PW));
    let id = r.stdout.trim().to_string();

    // show names each source and the source of each database.
    let show = ok(&["show", "--repo", repo_s, &id]);
    for want in [
        "source     mysql aml: mysql://root@127.0.0.1:3306",
        "source     mysql kfp: mysql://kfpsrc@127.0.0.1:3307",
        "source     mysql mlflow: mysql://root@127.0.0.1:3306",
        &format!("database {kfp1} (source kfp,"),
        &format!("database {} (source aml,", aml.name),
        &format!("database {} (source mlflow,", mlflow.name),
    ] {
        assert!(show.contains(want), "show lacks {want:?}:\n{show}");
    }
    assert!(!show.contains(SOURCE_PW));
    let m: Value = serde_json::from_str(&ok(&["show", "--repo", repo_s, &id, "--json"])).unwrap();
    let names: Vec<&str> = m["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["aml", "kfp", "mlflow"]);

    // restore --source kfp: that source's databases only, into the first server.
    let (t1, t2) = (TestDb::new("src_r1"), TestDb::new("src_r2"));
    let (r1, r2) = (t1.name.clone(), t2.name.clone());
    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo_s,
        &id,
        "--source",
        "kfp",
        "--mysql",
        MYSQL,
        "--rename",
        &format!("{kfp1}={r1}"),
        "--rename",
        &format!("{kfp2}={r2}"),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(sql(Some(&r1), "SELECT COUNT(*) FROM pipelines").trim(), "3");
    assert_eq!(sql(Some(&r2), "SELECT k FROM cache").trim(), "7");
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("restored "))
            .count(),
        2,
        "restored another source too: {r:?}"
    );
    let r = amlmigrate(&[
        "restore", "--repo", repo_s, &id, "--source", "nope", "--mysql", MYSQL,
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("its sources: aml, kfp, mlflow"), "{r:?}");

    // mlflow migrate --from-snapshot chooses the mlflow source.
    let pg = PgDb::new("src_pg");
    let r = amlmigrate(&[
        "mlflow",
        "migrate",
        "--from-snapshot",
        repo_s,
        &id,
        "--from-source",
        "mlflow",
        "--to",
        &pg.url(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        common::pg::psql(&pg.name, "SELECT count(*) FROM metrics").trim(),
        "300"
    );
    let r = amlmigrate(&[
        "mlflow",
        "migrate",
        "--from-snapshot",
        repo_s,
        &id,
        "--from-source",
        "kfp",
        "--to",
        &pg.url(),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("MySQL source kfp of snapshot")
            && r.stderr.contains("name MLflow's with --from-database"),
        "{r:?}"
    );
    tls_sql(
        &ca,
        &format!("DROP DATABASE `{kfp1}`; DROP DATABASE `{kfp2}`"),
    );
}

#[test]
fn a_snapshot_with_one_unnamed_source_reads_as_source_mysql() {
    let db = TestDb::create("src_old");
    sql(
        Some(&db.name),
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1),(2)",
    );
    let (_tmp, repo) = temp_repo();
    let id = backup(&repo, &db.name);
    // What the previous version wrote: no source names at all.
    let path = repo.join("snapshots").join(&id).join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for s in m["sources"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("name");
    }
    for d in m["mysql"].as_array_mut().unwrap() {
        d.as_object_mut().unwrap().remove("source");
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let repo_s = repo.to_str().unwrap();
    let show = ok(&["show", "--repo", repo_s, &id]);
    assert!(
        show.contains("source     mysql mysql: mysql://root@127.0.0.1:3306")
            && show.contains(&format!("database {} (source mysql,", db.name)),
        "{show}"
    );
    let target = TestDb::new("src_old_b");
    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo_s,
        &id,
        "--source",
        "mysql",
        "--mysql",
        MYSQL,
        "--rename",
        &format!("{}={}", db.name, target.name),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        sql(Some(&target.name), "SELECT COUNT(*) FROM t").trim(),
        "2"
    );
}
