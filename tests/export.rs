//! `export` is a reader like restore and verify (signatures checked with the same trust rules),
//! and a careful writer of what it reads, decrypted: owner-only modes whatever the umask, no
//! symbolic link followed, no folder others can write.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(name);
    ok(&["key", "generate", "--out", s(&key), "--quiet"]);
    (key.clone(), dir.join(format!("{name}.pub")))
}

fn export(repo: &Path, id: &str, to: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["export", "--repo", s(repo), id, "--to", s(to)];
    args.extend(extra);
    amlmigrate(&args)
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A small database and a repository holding one snapshot of it: (db, tmp, repo, id).
fn one_snapshot(tag: &str) -> (TestDb, tempfile::TempDir, PathBuf, String) {
    let db = TestDb::create(tag);
    sql(
        Some(&db.name),
        "CREATE TABLE jobs (id INT PRIMARY KEY, v TEXT); INSERT INTO jobs VALUES (1, 'x'), (2, 'y')",
    );
    let (tmp, repo) = temp_repo();
    let id = backup(&repo, &db.name);
    (db, tmp, repo, id)
}

#[test]
fn export_checks_signatures_as_every_reader_does() {
    let (db, tmp, repo, unsigned) = one_snapshot("exp_sig");
    let (key, public) = keypair(tmp.path(), "backup.key");
    ok(&[
        "repo",
        "init",
        "--repo",
        s(&repo),
        "--require-signatures",
        "--trust",
        s(&public),
    ]);
    let signed = ok(&[
        "backup",
        "--repo",
        s(&repo),
        "--mysql",
        MYSQL,
        "--databases",
        &db.name,
        "--sign-key",
        s(&key),
        "--quiet",
    ]);
    let key_arg = ["--verify-key", s(&public)];

    // A signed snapshot exports with the key; without one the repository's rule refuses it.
    let out = tmp.path().join("signed");
    let r = export(&repo, &signed, &out, &key_arg);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(out.join("manifest.json").exists());
    let r = export(&repo, &signed, &tmp.path().join("nokey"), &[]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("--verify-key"), "{r:?}");
    assert!(!tmp.path().join("nokey").exists(), "a refused export wrote");

    // Unsigned: refused before anything is written.
    let r = export(&repo, &unsigned, &tmp.path().join("unsigned"), &key_arg);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("not signed"), "{r:?}");
    assert!(
        !tmp.path().join("unsigned").exists(),
        "a refused export wrote"
    );

    // Forged: the bucket's writer drops the signing settings and rewrites the part with every
    // hash recomputed. The reader's key still refuses it.
    std::fs::remove_file(repo.join("amlmigrate-signing.json")).unwrap();
    forge_part(&repo, &signed, |files| {
        let load = files
            .keys()
            .find(|k| k.ends_with("load.sql"))
            .unwrap()
            .clone();
        files
            .get_mut(&load)
            .unwrap()
            .extend_from_slice(b"\nDROP DATABASE mysql;\n");
    });
    let r = export(&repo, &signed, &tmp.path().join("forged"), &key_arg);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(
        !tmp.path().join("forged").exists(),
        "a refused export wrote"
    );
}

#[test]
fn export_writes_owner_only_whatever_the_umask() {
    let (_db, tmp, repo, id) = one_snapshot("exp_umask");
    let out = tmp.path().join("out");
    let sh = format!(
        "umask 000 && exec {} export --repo {} {id} --to {}",
        bin(),
        s(&repo),
        s(&out)
    );
    let r = std::process::Command::new("sh")
        .args(["-c", &sh])
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    assert_eq!(mode(&out), 0o700);
    assert_eq!(mode(&out.join("parts")), 0o700);
    assert_eq!(mode(&out.join("manifest.json")), 0o600);
    for part in std::fs::read_dir(out.join("parts")).unwrap() {
        assert_eq!(mode(&part.unwrap().path()), 0o600);
    }
}

#[test]
fn export_never_writes_through_a_link_nor_into_a_folder_others_can_write() {
    let (_db, tmp, repo, id) = one_snapshot("exp_links");
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let untouched = |what: &str| {
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious",
            "{what}: the victim was written"
        );
    };

    // A folder anyone can write: someone could plant links in it while export writes.
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = export(&repo, &id, &shared, &[]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr
            .contains("can be written by other users (mode 0777)"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count(),
        0,
        "it wrote into it"
    );

    // A planted manifest.json -> victim: the folder is not empty, nothing is written.
    let planted = tmp.path().join("planted");
    std::fs::create_dir(&planted).unwrap();
    std::os::unix::fs::symlink(&victim, planted.join("manifest.json")).unwrap();
    let r = export(&repo, &id, &planted, &[]);
    assert_eq!(r.code, 4, "{r:?}");
    untouched("planted manifest.json");
    assert!(std::fs::symlink_metadata(planted.join("manifest.json")).is_ok());

    // --to a link to someone's (empty) folder, and a link to nothing yet.
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&theirs, &link).unwrap();
    let r = export(&repo, &id, &link, &[]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("symbolic link"), "{r:?}");
    assert_eq!(
        std::fs::read_dir(&theirs).unwrap().count(),
        0,
        "it wrote through the link"
    );
    let dangling = tmp.path().join("dangling");
    std::os::unix::fs::symlink(tmp.path().join("nothing-yet"), &dangling).unwrap();
    let r = export(&repo, &id, &dangling, &[]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        !tmp.path().join("nothing-yet").exists(),
        "it created the link's target"
    );

    // A folder of another user's (the tests run as root, who can make one).
    if std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        == b"0\n"
    {
        let other = tmp.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::os::unix::fs::chown(&other, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o700)).unwrap();
        let r = export(&repo, &id, &other, &[]);
        assert_eq!(r.code, 4, "{r:?}");
        assert!(r.stderr.contains("belongs to user 65534"), "{r:?}");
    }

    // An empty folder of one's own, even 0755 as mkdir makes it, is fine; what goes in is
    // owner-only.
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = export(&repo, &id, &mine, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(mode(&mine.join("parts")), 0o700);
    assert_eq!(mode(&mine.join("manifest.json")), 0o600);
    untouched("the end");
}
