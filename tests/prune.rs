//! `amlmigrate prune` on a real local repository: a policy keeps what it names (with reasons),
//! the newest snapshot and young leftovers survive, old leftovers go, and a policy that keeps
//! nothing is refused before anything is deleted.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Copies snapshot `from` as a committed snapshot `to` (its manifest says `to`).
fn clone_snapshot(repo: &Path, from: &str, to: &str) {
    let (src, dst) = (
        repo.join("snapshots").join(from),
        repo.join("snapshots").join(to),
    );
    let st = Command::new("cp")
        .arg("-r")
        .arg(&src)
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    let m = dst.join("manifest.json");
    let text = std::fs::read_to_string(&m).unwrap().replace(from, to);
    std::fs::write(m, text).unwrap();
}

/// A snapshot folder without manifest (a failed backup), its files last written `age` ago.
fn leftover(repo: &Path, from: &str, to: &str, age: &str) {
    clone_snapshot(repo, from, to);
    let dir = repo.join("snapshots").join(to);
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    let st = Command::new("find")
        .arg(&dir)
        .args(["-exec", "touch", "-d", age, "{}", "+"])
        .status()
        .unwrap();
    assert!(st.success());
}

fn folders(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

const OLD1: &str = "20260101T020000Z-000aaa";
const OLD2: &str = "20260102T020000Z-000bbb";
const OLD3: &str = "20260103T020000Z-000ccc";
const STALE: &str = "20260104T020000Z-000ddd";
const RUNNING: &str = "20260105T020000Z-000eee";

/// A repository with a real snapshot (now), three older copies, an old and a young leftover.
fn repo_with_history() -> (tempfile::TempDir, std::path::PathBuf, String, TestDb) {
    let db = TestDb::create("prune");
    sql(
        Some(&db.name),
        "CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2)",
    );
    let (tmp, repo) = temp_repo();
    let newest = backup(&repo, &db.name);
    for id in [OLD1, OLD2, OLD3] {
        clone_snapshot(&repo, &newest, id);
    }
    leftover(&repo, &newest, STALE, "3 days ago");
    leftover(&repo, &newest, RUNNING, "10 minutes ago");
    (tmp, repo, newest, db)
}

#[test]
fn prune_without_a_keep_rule_exits_2_and_deletes_nothing() {
    let (_tmp, repo, _newest, _db) = repo_with_history();
    let before = folders(&repo);
    let r = amlmigrate(&["prune", "--repo", repo.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("--keep-last") && r.stderr.contains("nothing was deleted"),
        "{r:?}"
    );
    assert_eq!(folders(&repo), before);
}

#[test]
fn prune_keeps_what_the_policy_names_and_removes_old_leftovers_but_not_running_ones() {
    let (_tmp, repo, newest, _db) = repo_with_history();
    let repo_s = repo.to_str().unwrap();

    // A dry run explains every decision and removes nothing.
    let before = folders(&repo);
    let dry = ok(&["prune", "--repo", repo_s, "--keep-last", "2", "--dry-run"]);
    assert_eq!(folders(&repo), before);
    let line = |id: &str| dry.lines().find(|l| l.contains(id)).unwrap().to_string();
    assert!(
        line(&newest).starts_with("keep") && line(&newest).contains("newest, last 2"),
        "{dry}"
    );
    assert!(
        line(OLD3).starts_with("keep") && line(OLD3).contains("last 2"),
        "{dry}"
    );
    assert!(line(OLD2).starts_with("would remove"), "{dry}");
    assert!(
        line(STALE).contains("uncommitted leftover older than a day"),
        "{dry}"
    );
    assert!(
        line(RUNNING).starts_with("keep") && line(RUNNING).contains("may still be writing"),
        "{dry}"
    );

    let out = ok(&["prune", "--repo", repo_s, "--keep-last", "2", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut removed: Vec<&str> = j["prune"]["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    removed.sort();
    assert_eq!(removed, vec![OLD1, OLD2, STALE]);
    let kept_reasons = j["prune"]["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == newest.as_str())
        .unwrap()["reasons"]
        .clone();
    assert_eq!(kept_reasons, serde_json::json!(["newest", "last 2"]));

    // Whole folders are gone; what is left is intact.
    assert_eq!(folders(&repo), {
        let mut v = vec![OLD3.to_string(), RUNNING.to_string(), newest.clone()];
        v.sort();
        v
    });
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["snapshots", "--repo", repo_s, "--json"])).unwrap();
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 2);
    ok(&["verify", "--repo", repo_s, OLD3]);
    ok(&["verify", "--repo", repo_s, &newest]);
}

#[test]
fn keep_within_keeps_recent_snapshots_and_the_newest_is_never_removed() {
    let (_tmp, repo, newest, _db) = repo_with_history();
    let repo_s = repo.to_str().unwrap();
    // Only the real snapshot is within 30 days; the 2026-01 copies are older than that when
    // the test runs after February 2026, and the newest is kept regardless.
    let out = ok(&["prune", "--repo", repo_s, "--keep-within", "30d", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = j["prune"]["decisions"].as_array().unwrap();
    let newest_d = d.iter().find(|x| x["id"] == newest.as_str()).unwrap();
    assert_eq!(newest_d["keep"], true, "{newest_d}");
    assert!(folders(&repo).contains(&newest));
    let old = d.iter().find(|x| x["id"] == OLD1).unwrap();
    assert_eq!(old["keep"], false, "{old}");
    assert_eq!(old["reasons"], serde_json::json!(["no rule keeps it"]));
    assert!(!folders(&repo).contains(&OLD1.to_string()));
    let bad = amlmigrate(&["prune", "--repo", repo_s, "--keep-within", "30 parsecs"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("not a duration"), "{bad:?}");
}

#[test]
fn the_newest_verified_snapshot_is_kept_and_damage_takes_the_mark_away() {
    let (_tmp, repo, newest, _db) = repo_with_history();
    let repo_s = repo.to_str().unwrap();
    let mark = |id: &str| repo.join("snapshots").join(id).join("verified.json");
    for id in [OLD1, OLD2, OLD3, newest.as_str()] {
        let _ = std::fs::remove_file(mark(id));
    }
    ok(&["verify", "--repo", repo_s, OLD1]);
    assert!(mark(OLD1).exists(), "verify recorded nothing");
    let dry = ok(&["prune", "--repo", repo_s, "--keep-last", "1", "--dry-run"]);
    let line = |id: &str| dry.lines().find(|l| l.contains(id)).unwrap().to_string();
    assert!(
        line(OLD1).starts_with("keep") && line(OLD1).contains("newest verified"),
        "{dry}"
    );
    assert!(line(OLD2).starts_with("would remove"), "{dry}");

    // A verified snapshot found damaged later loses its mark.
    ok(&["verify", "--repo", repo_s, OLD2]);
    plain_snapshot(&repo, OLD2);
    let part = std::fs::read_dir(repo.join("snapshots").join(OLD2).join("parts"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&part, bytes).unwrap();
    let r = amlmigrate(&["verify", "--repo", repo_s, OLD2]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        !mark(OLD2).exists(),
        "a damaged snapshot is still marked verified"
    );
}
