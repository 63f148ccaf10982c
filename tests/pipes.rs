//! Commands writing to stdout end quietly when the reader goes away (`… | head -1`): no panic,
//! no backtrace, no error line, and the exit status the work earned.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::upgrade::*;
use common::*;

/// Runs amlmigrate with stdout a pipe whose read end is closed before the command writes
/// anything, as `head -1` does once it has its line; the exit code and stderr.
fn into_closed_pipe(args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_BACKTRACE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap().code(), stderr)
}

fn assert_quiet(args: &[&str], env: &[(&str, String)]) {
    let (code, stderr) = into_closed_pipe(args, env);
    assert_eq!(code, Some(0), "amlmigrate {args:?}: {stderr}");
    assert!(stderr.is_empty(), "amlmigrate {args:?} said: {stderr}");
}

#[test]
fn generated_completions_and_man_page_end_quietly_into_a_closed_pipe() {
    assert_quiet(&["generate", "completions", "bash"], &[]);
    assert_quiet(&["generate", "man"], &[]);
}

#[test]
fn snapshots_and_show_end_quietly_into_a_closed_pipe() {
    let db = TestDb::with_fixture("pipes");
    let (_dir, repo) = temp_repo();
    let id = backup(&repo, &db.name);
    let repo = repo.to_str().unwrap();
    assert_quiet(&["snapshots", "--repo", repo], &[]);
    assert_quiet(&["snapshots", "--repo", repo, "--json"], &[]);
    assert_quiet(&["show", "--repo", repo, &id], &[]);
    assert_quiet(&["show", "--repo", repo, &id, "--json"], &[]);
}

#[test]
fn a_backup_whose_stdout_and_stderr_readers_went_away_still_commits_its_snapshot() {
    let db = TestDb::with_fixture("pipes_both");
    let (_dir, repo) = temp_repo();
    let mut child = Command::new(bin())
        .args([
            "backup",
            "--init",
            "--repo",
            repo.to_str().unwrap(),
            "--mysql",
            MYSQL,
            "--databases",
            &db.name,
            "--progress",
            "lines",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let list = ok(&["snapshots", "--repo", repo.to_str().unwrap(), "--json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn upgrade_plan_ends_quietly_into_a_closed_pipe() {
    let lab = Lab::new(LabOptions {
        world: World::Plugins,
        ..Default::default()
    });
    // The plan of a cluster that is not upgraded yet is long and exits 0.
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.lines().count() > 10, "{plan:?}");
    // Its summary on stderr is all it says; nothing about the pipe.
    let (code, stderr) = into_closed_pipe(&["upgrade", "plan", "--config", lab.cfg()], &lab.env());
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, plan.stderr);
}
