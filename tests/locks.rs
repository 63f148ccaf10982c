//! Repository locks an operator can see and trust: stale locks of dead processes are shown and
//! removed, a wait says who holds the lock and stops at once on Ctrl-C, a dry run and readers
//! take shared locks (a prune cannot repack under a restore), and durations parse one way.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::gate::{TableGate, Tail, wait_until_blocked};
use common::*;
use serde_json::Value;

/// A pid no process has: one that ran and was reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn repo_with_snapshot(tag: &str) -> (tempfile::TempDir, std::path::PathBuf, TestDb) {
    let db = TestDb::create(tag);
    big_table(&db.name, 200);
    let (tmp, repo) = temp_repo();
    backup(&repo, &db.name);
    (tmp, repo, db)
}

#[test]
fn a_lock_of_a_dead_process_is_stale_shown_removed_and_never_waited_for() {
    let (_tmp, repo, _db) = repo_with_snapshot("lock_stale");
    let repo_s = repo.to_str().unwrap();
    plant_lock(
        &repo.join("locks"),
        "20260101T000000.000Z-dead00000000.json",
        "exclusive",
        "prune",
        &hostname(),
        dead_pid(),
    );
    plant_lock(
        &repo.join("locks"),
        "20260101T000000.000Z-a11ve0000000.json",
        "shared",
        "backup",
        "another-host",
        4242,
    );
    let listing = ok(&["repo", "locks", "--repo", repo_s]);
    assert!(
        listing.contains("dead00000000") && listing.contains("is gone"),
        "{listing}"
    );
    assert!(
        listing.contains("another-host") && listing.contains("pid 4242"),
        "{listing}"
    );
    // The dead process's exclusive lock does not hold up a prune (a dry run: shared only, so
    // the live shared lock of the other host does not either).
    let r = amlmigrate(&[
        "prune",
        "--repo",
        repo_s,
        "--keep-last",
        "1",
        "--dry-run",
        "--lock-wait",
        "2s",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    // --remove-stale removes only the stale lock.
    plant_lock(
        &repo.join("locks"),
        "20260101T000000.000Z-dead00000001.json",
        "exclusive",
        "prune",
        &hostname(),
        dead_pid(),
    );
    let out = ok(&[
        "repo",
        "locks",
        "--repo",
        repo_s,
        "--remove-stale",
        "--json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["locks"].as_array().unwrap().len(), 2, "{j}");
    let left: Vec<String> = std::fs::read_dir(repo.join("locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["20260101T000000.000Z-a11ve0000000.json"]);
}

#[test]
fn a_prune_facing_a_live_lock_names_its_holder_and_ctrl_c_stops_a_waiting_backup_at_once() {
    let (_tmp, repo, db) = repo_with_snapshot("lock_wait");
    let repo_s = repo.to_str().unwrap();
    plant_lock(
        &repo.join("locks"),
        "20260101T000000.000Z-0ther0000000.json",
        "exclusive",
        "prune",
        "other-host",
        777,
    );
    let r = amlmigrate(&[
        "prune",
        "--repo",
        repo_s,
        "--keep-last",
        "1",
        "--lock-wait",
        "1s",
    ]);
    assert_eq!(r.code, 4, "{r:?}");
    for want in ["prune on other-host", "pid 777", "since", "repo locks"] {
        assert!(r.stderr.contains(want), "{want}: {r:?}");
    }
    // A backup waits for that prune, says so, and stops at once on Ctrl-C.
    let mut child = Command::new(bin())
        .args(["backup", "--repo", repo_s, "--mysql", MYSQL, "--databases"])
        .arg(&db.name)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Tail::new(child.stderr.take().unwrap());
    stderr.wait_for("pid 777");
    common::gate::signal(&child, "-INT");
    let code = child.wait().unwrap().code();
    let stderr = stderr.finish();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("waiting for"), "{stderr}");
    assert_eq!(snapshot_count(&repo), 1, "{stderr}");
}

fn snapshot_count(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("snapshots"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("manifest.json").exists())
        .count()
}

#[test]
fn a_prune_during_a_restore_waits_for_it_and_the_restore_succeeds() {
    let (_tmp, repo, src) = repo_with_snapshot("lock_restore");
    let repo_s = repo.to_str().unwrap().to_string();
    let dst = TestDb::create("lock_restore_dst");
    sql(
        None,
        &format!("CREATE TABLE `{}`.big LIKE `{}`.big", dst.name, src.name),
    );
    // The restore stops mid-way, in the load of `big`, for as long as the test holds the gate.
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
    // A prune that would remove the snapshot being restored refuses while the restore reads.
    let second = backup(&repo, &src.name);
    let r = amlmigrate(&[
        "prune",
        "--repo",
        &repo_s,
        "--keep-last",
        "1",
        "--lock-wait",
        "1s",
    ]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("restore on"), "{r:?}");
    assert_eq!(snapshot_count(&repo), 2);
    gate.open();
    let code = child.wait().unwrap().code();
    let stderr = stderr.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(checksums(&src.name), checksums(&dst.name));
    // Once the restore is done, the prune goes through.
    ok(&["prune", "--repo", &repo_s, "--keep-last", "1"]);
    assert_eq!(snapshot_count(&repo), 1);
    ok(&["verify", "--repo", &repo_s, &second]);
}

#[test]
fn durations_parse_one_way_and_out_of_range_spans_are_input_errors() {
    let (_tmp, repo, _db) = repo_with_snapshot("lock_span");
    let repo_s = repo.to_str().unwrap();
    for (span, want) in [
        ("99999999d", "out of range"),
        ("6M", "months"),
        ("soon", "not a duration"),
    ] {
        let r = amlmigrate(&["prune", "--repo", repo_s, "--keep-within", span]);
        assert_eq!(r.code, 2, "{span}: {r:?}");
        assert!(r.stderr.contains(want), "{span}: {r:?}");
    }
    // `m` is minutes in --keep-within as in --lock-wait: a snapshot taken a minute ago is not
    // within 1m of a moment two minutes later… so --keep-within 60m keeps it, and the reason
    // says the span as given.
    let out = ok(&[
        "prune",
        "--repo",
        repo_s,
        "--keep-within",
        "60m",
        "--lock-wait",
        "1m",
        "--dry-run",
        "--json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    let reasons = &j["prune"]["decisions"][0]["reasons"];
    assert!(reasons.to_string().contains("within 60m"), "{reasons}");
    let r = amlmigrate(&[
        "prune",
        "--repo",
        repo_s,
        "--keep-last",
        "1",
        "--lock-wait",
        "1M",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
}
