//! Errors print each cause once: the library's errors carry their causes, and the drivers
//! below them repeat each other (a lost MySQL connection, a full disk under object_store).

mod common;

use common::gate::{TableGate, signal, wait_for, wait_until_blocked};
use common::*;
use std::process::{Command, Stdio};

fn backup_cmd(repo: &str, db: &str) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args([
        "backup",
        "--init",
        "--repo",
        repo,
        "--mysql",
        MYSQL,
        "--databases",
        db,
        "--progress",
        "never",
    ])
    .env_remove("AMLMIGRATE_MYSQL_PASSWORD")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

#[test]
fn a_connection_killed_mid_backup_is_said_once_with_what_to_do() {
    let db = TestDb::create("killed");
    big_table(&db.name, 400_000);
    let (_tmp, repo) = temp_repo();
    let gate = TableGate::write(&db.name, "big");
    let child = backup_cmd(repo.to_str().unwrap(), &db.name)
        .spawn()
        .unwrap();
    let id = wait_until_blocked(&format!("%FROM `{}`.`big`%", db.name));
    // Hold the tool still and let the server start: its rows fill the socket buffers and it
    // waits, mid-result, for a reader that does not read. Then the connection is killed.
    signal(&child, "-STOP");
    gate.open();
    wait_for("the server to send rows nobody reads", || {
        let state = sql(
            None,
            &format!("SELECT STATE FROM information_schema.PROCESSLIST WHERE ID = {id}"),
        );
        (!state.trim().is_empty() && !state.contains("Waiting for table")).then_some(())
    });
    sql(None, &format!("KILL {id}"));
    signal(&child, "-CONT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    // Each cause once: no clause of the chain is said twice (mid-packet the cause is an I/O
    // error, "bytes remaining on stream"; on a packet boundary a closed connection).
    let clauses: Vec<&str> = line.split(": ").collect();
    for (i, c) in clauses.iter().enumerate() {
        assert!(!clauses[i + 1..].contains(c), "{c:?} said twice: {line}");
    }
    assert!(line.matches("Input/output error").count() <= 1, "{line}");
    assert!(line.contains(&format!("`{}`.`big`", db.name)), "{line}");
    assert!(line.contains("connection to the server was lost"), "{line}");
    assert!(line.contains("run the command again"), "{line}");
    let committed = std::fs::read_dir(repo.join("snapshots"))
        .map(|d| d.flatten().any(|e| e.path().join("manifest.json").exists()))
        .unwrap_or(false);
    assert!(!committed, "no snapshot may be committed");
}

/// A 2 MiB tmpfs as the repository: the backup runs out of space in its first part.
#[test]
fn a_full_disk_is_said_once() {
    let db = TestDb::create("fulldisk");
    // Incompressible rows, so the part outgrows the 2 MiB disk.
    sql(
        Some(&db.name),
        "CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(255)); \
         INSERT INTO big SELECT seq, CONCAT(SHA2(seq,256),SHA2(seq+1,256),SHA2(seq+2,256)) FROM seq_1_to_100000",
    );
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(
        mounted.status.success(),
        "this test needs to mount a 2 MiB tmpfs (run as root, as scripts/test.sh does in CI): {}",
        String::from_utf8_lossy(&mounted.stderr)
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let repo = mnt.join("repo");
    let out = backup_cmd(repo.to_str().unwrap(), &db.name)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert_eq!(line.matches("No space left on device").count(), 1, "{line}");
    assert!(line.contains("the disk is full"), "{line}");
    assert!(line.contains(repo.to_str().unwrap()), "{line}");
}
