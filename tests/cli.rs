//! The command line itself: help that teaches, generated completions and man page, usage errors.

mod common;

use common::*;

#[test]
fn help_explains_each_command_and_the_exit_codes() {
    let top = ok(&["--help"]);
    for cmd in [
        "backup",
        "restore",
        "snapshots",
        "show",
        "verify",
        "prune",
        "schedule",
        "pvc",
        "kube",
        "upgrade",
        "profile",
    ] {
        assert!(top.contains(cmd), "{top}");
    }
    assert!(top.contains("Exit codes") && top.contains("130"), "{top}");
    // Completions and the man page are listed with the other commands.
    assert!(
        top.lines().any(|l| l.trim_start().starts_with("generate ")),
        "{top}"
    );
    let backup = ok(&["backup", "--help"]);
    assert!(
        backup.contains("CONSISTENT")
            && backup.contains("--kube")
            && backup.contains("--encrypt-to")
            && backup.contains("Examples"),
        "{backup}"
    );
    let upgrade = ok(&["upgrade", "run", "--help"]);
    assert!(
        upgrade.contains("--yes") && upgrade.contains("--until") && upgrade.contains("--only"),
        "{upgrade}"
    );
    let restore = ok(&["restore", "--help"]);
    assert!(
        restore.contains("--replace")
            && restore.contains("--dry-run")
            && restore.contains("--only")
            && restore.contains("--namespace-map")
            && restore.contains("--on-conflict"),
        "{restore}"
    );
}

#[test]
fn completions_and_man_page_are_generated_from_the_same_flags() {
    let bash = ok(&["generate", "completions", "bash"]);
    assert!(
        bash.contains("--mysql-password-file"),
        "completion lacks a flag"
    );
    let man = ok(&["generate", "man"]);
    assert!(
        man.contains(".TH amlmigrate"),
        "{}",
        &man[..200.min(man.len())]
    );
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let r = amlmigrate(&["backup", "--repo", "/tmp/x"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--mysql"), "{r:?}");
    let r = amlmigrate(&["backup", "--repo", "/tmp/x", "--mysql", "postgres://h/db"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("mysql://"), "{r:?}");
    let r = amlmigrate(&[
        "backup", "--repo", "/tmp/x", "--mysql", MYSQL, "--tag", "novalue",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("KEY=VALUE"), "{r:?}");
}

#[test]
fn restore_names_databases_the_snapshot_does_not_hold() {
    let src = TestDb::create("cli_db");
    sql(
        Some(&src.name),
        "CREATE TABLE t (a INT); INSERT INTO t VALUES (1)",
    );
    let (_tmp, repo) = temp_repo();
    backup(&repo, &src.name);
    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        "latest",
        "--mysql",
        MYSQL,
        "--databases",
        "nope",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("database nope is not in snapshot") && r.stderr.contains(&src.name),
        "{r:?}"
    );
}

#[test]
fn upgrade_plan_changes_nothing_not_even_a_missing_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("bakups");
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/upgrade-1.3-to-1.4.toml"),
    )
    .unwrap();
    let line = "repository = \"/backups/aml\"";
    assert!(
        example.contains(line),
        "the example's repository line moved"
    );
    let cfg = tmp.path().join("upgrade.toml");
    let repository = format!("repository = \"{}\"", typo.display());
    std::fs::write(&cfg, example.replace(line, &repository)).unwrap();
    let r = amlmigrate(&["upgrade", "plan", "--config", cfg.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(typo.to_str().unwrap()) && r.stderr.contains("repo init"),
        "{r:?}"
    );
    assert!(!typo.exists(), "upgrade plan created {}", typo.display());
}
