//! Bad input gets a clear error naming the thing and the fix, a meaningful exit code, and
//! changes nothing. Damage is found and named. Interrupted backups leave no snapshot.

mod common;

use common::gate::{TableGate, Tail, wait_until_blocked};
use common::*;
use std::process::{Command, Stdio};

#[test]
fn unreachable_host_is_a_connection_error() {
    let (_tmp, repo) = temp_repo();
    let r = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        "mysql://root@127.0.0.1:1",
    ]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr
            .contains("cannot connect to MySQL at mysql://root@127.0.0.1:1"),
        "{r:?}"
    );
}

#[test]
fn wrong_password_is_named_and_never_printed() {
    let user = format!("amlt_u{}", std::process::id());
    sql(
        None,
        &format!("CREATE OR REPLACE USER '{user}'@'%' IDENTIFIED BY 'Right-Pass-1'"),
    );
    let (_tmp, repo) = temp_repo();
    let url = format!("mysql://{user}:Wr0ng-Secret-9@127.0.0.1:3306");
    let r = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        &url,
        "--json",
    ]);
    sql(None, &format!("DROP USER '{user}'@'%'"));
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("access denied"), "{r:?}");
    assert!(
        !r.all().contains("Wr0ng-Secret-9"),
        "password leaked: {r:?}"
    );
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["error"]["kind"], "connection");
}

#[test]
fn passwords_never_reach_output_logs_manifest_or_json() {
    let src = TestDb::with_fixture("secret");
    let user = format!("amlt_s{}", std::process::id());
    let pass = "Sup3r-S3cret-Pw";
    sql(
        None,
        &format!("CREATE OR REPLACE USER '{user}'@'%' IDENTIFIED BY '{pass}'"),
    );
    sql(None, &format!("GRANT ALL ON *.* TO '{user}'@'%'"));
    let (tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap();
    let url = format!("mysql://{user}:{pass}@127.0.0.1:3306");
    let a = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        repo_s,
        "--mysql",
        &url,
        "--databases",
        &src.name,
        "--json",
        "-vv",
    ]);
    let pwfile = tmp.path().join("pw");
    std::fs::write(&pwfile, format!("{pass}\n")).unwrap();
    let b = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        repo_s,
        "--mysql",
        &format!("mysql://{user}@127.0.0.1:3306"),
        "--databases",
        &src.name,
        "--mysql-password-file",
        pwfile.to_str().unwrap(),
        "--progress",
        "lines",
    ]);
    let c = amlmigrate_env(
        &[
            "backup",
            "--init",
            "--repo",
            repo_s,
            "--mysql",
            &format!("mysql://{user}@127.0.0.1:3306"),
            "--databases",
            &src.name,
        ],
        &[("AMLMIGRATE_MYSQL_PASSWORD", pass)],
    );
    let dst = TestDb::new("secret_dst");
    let d = amlmigrate(&[
        "restore",
        "--repo",
        repo_s,
        "latest",
        "--mysql",
        &url,
        "--rename",
        &format!("{}={}", src.name, dst.name),
        "--json",
    ]);
    let help = amlmigrate_env(&["backup", "--help"], &[("AMLMIGRATE_MYSQL", &url)]);
    sql(None, &format!("DROP USER '{user}'@'%'"));
    for r in [&a, &b, &c, &d] {
        assert_eq!(r.code, 0, "{r:?}");
    }
    for r in [&a, &b, &c, &d, &help] {
        assert!(!r.all().contains(pass), "password leaked: {r:?}");
    }
    let mut stored = String::new();
    for entry in walk(&repo) {
        if entry.extension().is_some_and(|e| e == "json") {
            stored.push_str(&std::fs::read_to_string(&entry).unwrap());
        }
    }
    assert!(stored.contains(&user), "the manifest records the user");
    assert!(!stored.contains(pass), "password stored in the repository");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn an_unknown_database_is_named_with_the_closest_names_not_every_database() {
    let (_tmp, repo) = temp_repo();
    let meant = TestDb::create("closest");
    // A database nothing like the names asked for: never listed.
    let far = TestDb {
        name: format!("zz_far_away_{}", std::process::id()),
    };
    sql(
        None,
        &format!("CREATE DATABASE IF NOT EXISTS `{}`", far.name),
    );
    let backup = |db: &str| {
        amlmigrate(&[
            "backup",
            "--init",
            "--repo",
            repo.to_str().unwrap(),
            "--mysql",
            MYSQL,
            "--databases",
            db,
        ])
    };
    let typo = meant.name.replacen("closest", "closet", 1);
    let r = backup(&typo);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "database {typo} not found; the closest it has: {}",
            meant.name
        )),
        "{r:?}"
    );
    assert!(!r.stderr.contains(&far.name), "{r:?}");

    let r = backup("no_such_db_amlt");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("database no_such_db_amlt not found"),
        "{r:?}"
    );
    assert!(!r.stderr.contains(&far.name), "{r:?}");
    assert!(!repo.join("snapshots").exists(), "nothing written");
}

#[test]
fn missing_repository_and_foreign_folders_are_refused() {
    let (tmp, repo) = temp_repo();
    let r = amlmigrate(&["snapshots", "--repo", repo.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("does not exist"), "{r:?}");

    let foreign = tmp.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("important.txt"), "keep me").unwrap();
    let r = amlmigrate(&["verify", "--repo", foreign.to_str().unwrap(), "latest"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not an amlmigrate repository"), "{r:?}");
    let r = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        foreign.to_str().unwrap(),
        "--mysql",
        MYSQL,
    ]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("not empty"), "{r:?}");
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);
}

#[test]
fn unknown_and_ambiguous_snapshot_ids_are_explained() {
    let src = TestDb::create("ids");
    sql(
        Some(&src.name),
        "CREATE TABLE t (a INT); INSERT INTO t VALUES (1)",
    );
    let (_tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap();
    let a = backup(&repo, &src.name);
    let b = backup(&repo, &src.name);
    assert!(a < b, "ids sort by time: {a} {b}");
    let r = amlmigrate(&["show", "--repo", repo_s, "19990101"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("not found") && r.stderr.contains("amlmigrate snapshots"),
        "{r:?}"
    );
    let r = amlmigrate(&["show", "--repo", repo_s, "2"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("ambiguous") && r.stderr.contains(&a) && r.stderr.contains(&b),
        "{r:?}"
    );
    assert!(ok(&["show", "--repo", repo_s, "latest"]).contains(&b));
}

#[test]
fn verify_names_the_part_and_entry_of_a_flipped_byte() {
    let src = TestDb::create("flip");
    big_table(&src.name, 20_000);
    let (_tmp, repo) = temp_repo();
    let id = backup(&repo, &src.name);
    let part = part_file(&repo, &id);
    let mut bytes = std::fs::read(&part).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&part, bytes).unwrap();
    let r = amlmigrate(&["verify", "--repo", repo.to_str().unwrap(), &id, "--json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["error"]["kind"], "damaged");
    assert_eq!(j["error"]["part"], format!("mysql-{}", src.name));
    let entry = j["error"]["entry"].as_str().unwrap();
    assert!(
        entry.starts_with(&format!("mysql/{}/big/", src.name)),
        "{entry}"
    );

    // Restore refuses it too, and leaves nothing it created: not the database, not an empty
    // table that looks restored.
    let dst = TestDb::new("flip_dst");
    let r = restore_renamed(&repo, &id, &src.name, &dst.name);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("dropped the database"), "{r:?}");
    let left = sql(
        None,
        &format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{}'",
            dst.name
        ),
    );
    assert_eq!(left.trim(), "0", "{r:?}");

    // Into a database that existed, only the tables it created go.
    let kept = TestDb::create("flip_kept");
    sql(Some(&kept.name), "CREATE TABLE mine (a int)");
    let r = restore_renamed(&repo, &id, &src.name, &kept.name);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(tables(&kept.name), ["mine"], "{r:?}");
}

#[test]
fn verify_reports_a_truncated_part() {
    let src = TestDb::create("trunc");
    big_table(&src.name, 5_000);
    let (_tmp, repo) = temp_repo();
    let id = backup(&repo, &src.name);
    let part = part_file(&repo, &id);
    let bytes = std::fs::read(&part).unwrap();
    std::fs::write(&part, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let r = amlmigrate(&["verify", "--repo", repo.to_str().unwrap(), "latest"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr.contains(&format!("part mysql-{}", src.name)) && r.stderr.contains("truncated"),
        "{r:?}"
    );
}

fn interrupted_backup_leaves_no_snapshot(signal: &str) {
    let src = TestDb::create("intr");
    big_table(&src.name, 400_000);
    // Read after `big`: holding its lock stops the backup once every chunk of `big` is out.
    sql(
        Some(&src.name),
        "CREATE TABLE zz_gate (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO zz_gate VALUES (1)",
    );
    let (_tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap().to_string();
    let gate = TableGate::write(&src.name, "zz_gate");
    let mut child = Command::new(bin())
        .args([
            "backup",
            "--init",
            "--repo",
            &repo_s,
            "--mysql",
            MYSQL,
            "--databases",
            &src.name,
            "--chunk-mib",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Tail::new(child.stderr.take().unwrap());
    wait_until_blocked(&format!("%FROM `{}`.`zz_gate`%", src.name));
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    if signal == "-INT" {
        // The stop is asked for before the last table is read; then the backup may go on.
        stderr.wait_for("stopping cleanly");
    }
    gate.open();
    let code = child.wait().unwrap().code();
    let stderr = stderr.finish();
    if signal == "-INT" {
        assert_eq!(code, Some(130), "{stderr}");
        assert!(stderr.contains("no snapshot was written"), "{stderr}");
        // A clean stop also removes what it had uploaded.
        let left: Vec<_> = std::fs::read_dir(repo.join("snapshots"))
            .map(|d| d.flatten().collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    let r = amlmigrate(&["snapshots", "--repo", &repo_s, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        j["snapshots"].as_array().unwrap().len(),
        0,
        "an interrupted backup is visible: {r:?}"
    );
}

#[test]
fn ctrl_c_stops_cleanly_and_leaves_no_snapshot() {
    interrupted_backup_leaves_no_snapshot("-INT");
}

#[test]
fn kill_9_mid_backup_leaves_no_visible_snapshot() {
    interrupted_backup_leaves_no_snapshot("-KILL");
}

#[test]
fn ctrl_c_mid_restore_rolls_back_the_table_in_progress_and_replace_finishes_it() {
    let src = TestDb::create("rintr");
    big_table(&src.name, 400_000);
    let (_tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap().to_string();
    ok(&[
        "backup",
        "--init",
        "--repo",
        &repo_s,
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
        "--chunk-mib",
        "1",
        "--quiet",
    ]);
    // The target's `big` exists, empty, and the test holds a read lock on it: the load waits
    // there, mid-restore, for as long as the test needs.
    let dst = TestDb::create("rintr_dst");
    sql(
        None,
        &format!("CREATE TABLE `{}`.big LIKE `{}`.big", dst.name, src.name),
    );
    let gate = TableGate::read(&dst.name, "big");
    let mut child = Command::new(bin())
        .args([
            "restore", "--repo", &repo_s, "latest", "--mysql", MYSQL, "--rename",
        ])
        .arg(format!("{}={}", src.name, dst.name))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Tail::new(child.stderr.take().unwrap());
    wait_until_blocked(&format!("LOAD DATA%`{}`%", dst.name));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    stderr.wait_for("stopping cleanly");
    gate.open();
    let code = child.wait().unwrap().code();
    let stderr = stderr.finish();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("rolled back") && stderr.contains("--replace"),
        "{stderr}"
    );
    assert_eq!(
        sql(None, &format!("SELECT COUNT(*) FROM `{}`.big", dst.name)).trim(),
        "0"
    );

    let r = restore_renamed(&repo, "latest", &src.name, &dst.name);
    assert_eq!(
        r.code, 0,
        "an empty table left by the rollback is not in the way: {r:?}"
    );
    assert_eq!(checksums(&dst.name), checksums(&src.name));
}
