//! Signed snapshots, owner-only folder repositories and untrusted manifest sizes, against the
//! real binary and the real MariaDB. The attacker can write the repository: they rewrite a part
//! and recompute every hash in the manifest, so only the signature can tell.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// `key generate` into `dir/name`: (secret key, public key).
fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(name);
    ok(&["key", "generate", "--out", key.to_str().unwrap(), "--quiet"]);
    (key.clone(), dir.join(format!("{name}.pub")))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn signed_backup(repo: &Path, db: &str, key: &Path) -> String {
    ok(&[
        "backup",
        "--init",
        "--repo",
        s(repo),
        "--mysql",
        MYSQL,
        "--databases",
        db,
        "--sign-key",
        s(key),
        "--quiet",
    ])
}

/// Rewrites the one part of snapshot `id` through `f` (entry path → bytes, in archive order)
/// and recomputes its entries' and its own size and sha256 in the manifest.
fn forge_part(repo: &Path, id: &str, f: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) {
    let dir = repo.join("snapshots").join(id);
    let part_file = part_file(repo, id);
    let (order, mut by_path) = read_plain_part(&part_file);
    let mut files: Vec<(String, Vec<u8>)> = order
        .into_iter()
        .map(|p| {
            let data = by_path.remove(&p).unwrap();
            (p, data)
        })
        .collect();
    f(&mut files);
    let paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    let files: std::collections::BTreeMap<String, Vec<u8>> = files.into_iter().collect();
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    write_plain_part(&part_file, &paths, &files, &mut m["parts"][0]);
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_signed_snapshot_verifies_and_a_forged_one_with_recomputed_hashes_is_refused() {
    let src = TestDb::with_fixture("sign_src");
    let (tmp, repo) = temp_repo();
    let (key, public) = keypair(tmp.path(), "backup.key");
    let id = signed_backup(&repo, &src.name, &key);
    assert!(
        repo.join("snapshots")
            .join(&id)
            .join("manifest.json.sig")
            .exists(),
        "no signature object beside the manifest"
    );

    let out = ok(&[
        "verify",
        "--repo",
        s(&repo),
        &id,
        "--verify-key",
        s(&public),
    ]);
    assert!(out.contains("sound and signed by key"), "{out}");

    // The attacker adds a statement to schema.sql and recomputes every hash: without a key,
    // verify calls it sound; with the key it is refused, and so is the restore.
    forge_part(&repo, &id, |files| {
        let schema = files
            .iter_mut()
            .find(|(p, _)| p.ends_with("/schema.sql"))
            .unwrap();
        schema
            .1
            .extend_from_slice(b"\nCREATE DATABASE IF NOT EXISTS amlt_forged_by_attacker;\n");
    });
    ok(&["verify", "--repo", s(&repo), &id]);
    let r = amlmigrate(&[
        "verify",
        "--repo",
        s(&repo),
        &id,
        "--verify-key",
        s(&public),
    ]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("BAD SIGNATURE"), "{r:?}");

    let target = TestDb::new("sign_dst");
    let r = amlmigrate_env(
        &[
            "restore",
            "--repo",
            s(&repo),
            &id,
            "--mysql",
            MYSQL,
            "--rename",
            &format!("{}={}", src.name, target.name),
        ],
        &[("AMLMIGRATE_VERIFY_KEY", s(&public))],
    );
    assert_eq!(r.code, 7, "{r:?}");
    let created = sql(
        None,
        &format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{}'",
            target.name
        ),
    );
    assert_eq!(
        created.trim(),
        "0",
        "the refused restore created its target"
    );

    // Another key, even one that claims the right key id, is no key at all.
    let (_, other) = keypair(tmp.path(), "other.key");
    let good = signed_backup(&repo, &src.name, &key);
    let r = amlmigrate(&[
        "verify",
        "--repo",
        s(&repo),
        &good,
        "--verify-key",
        s(&other),
    ]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("not a trusted key"), "{r:?}");
    let r = amlmigrate(&[
        "verify",
        "--repo",
        s(&repo),
        &good,
        "--verify-key",
        &format!("{},{}", s(&other), s(&public)),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["signed_by"].is_string(), "{v}");
}

#[test]
fn a_repository_that_requires_signatures_refuses_unsigned_snapshots_backups_and_keyless_readers() {
    let src = TestDb::with_fixture("sign_req");
    let (tmp, repo) = temp_repo();
    let (key, public) = keypair(tmp.path(), "backup.key");
    let (wrong, _) = keypair(tmp.path(), "wrong.key");
    // Taken before signatures were required.
    let unsigned = backup(&repo, &src.name);

    ok(&[
        "repo",
        "init",
        "--repo",
        s(&repo),
        "--require-signatures",
        "--trust",
        s(&public),
    ]);
    let before = std::fs::read_dir(repo.join("snapshots")).unwrap().count();
    let r = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        s(&repo),
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
    ]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("--sign-key"), "{r:?}");
    let r = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        s(&repo),
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
        "--sign-key",
        s(&wrong),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("is not one repository"), "{r:?}");
    assert_eq!(
        std::fs::read_dir(repo.join("snapshots")).unwrap().count(),
        before,
        "a refused backup left something behind"
    );

    let signed = signed_backup(&repo, &src.name, &key);
    let r = amlmigrate(&["verify", "--repo", s(&repo), &signed]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("--verify-key"), "{r:?}");
    ok(&[
        "verify",
        "--repo",
        s(&repo),
        &signed,
        "--verify-key",
        s(&public),
    ]);

    let r = amlmigrate(&[
        "verify",
        "--repo",
        s(&repo),
        &unsigned,
        "--verify-key",
        s(&public),
    ]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("not signed"), "{r:?}");
    let r = amlmigrate(&[
        "show",
        "--repo",
        s(&repo),
        &unsigned,
        "--verify-key",
        s(&public),
    ]);
    assert_eq!(r.code, 7, "{r:?}");

    // The listing shows both, each with its state, and refuses neither.
    let out = ok(&["snapshots", "--repo", s(&repo), "--verify-key", s(&public)]);
    let line = |id: &str| out.lines().find(|l| l.starts_with(id)).unwrap().to_string();
    assert!(line(&unsigned).contains("UNSIGNED"), "{out}");
    assert!(line(&signed).contains("key "), "{out}");
    let v: Value = serde_json::from_str(&ok(&["snapshots", "--repo", s(&repo), "--json"])).unwrap();
    let states: Vec<&str> = v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["signature"]["refusal"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["no_reader_key", "no_reader_key"], "{v}");
}

#[test]
fn keys_are_standard_pem_the_secret_one_owner_only_and_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "k");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // openssl derives the same public key from the secret one.
    let out = std::process::Command::new("openssl")
        .args(["pkey", "-in", s(&key), "-pubout"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        std::fs::read_to_string(&public).unwrap()
    );
    let r = amlmigrate(&["key", "generate", "--out", s(&key)]);
    assert_eq!(r.code, 4, "{r:?}");
}

#[test]
fn a_new_folder_repository_is_owner_only_folders_0700_files_0600() {
    use std::os::unix::fs::PermissionsExt;
    let src = TestDb::with_fixture("modes");
    let (tmp, repo) = temp_repo();
    let (key, _) = keypair(tmp.path(), "k");
    let id = signed_backup(&repo, &src.name, &key);
    ok(&["verify", "--repo", s(&repo), &id]);
    let mut seen = BTreeMap::new();
    let mut stack = vec![repo.clone()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        seen.insert(p.clone(), meta.permissions().mode() & 0o777);
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(seen.len() > 6, "{seen:?}");
    for (p, mode) in &seen {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:03o}", p.display());
    }
}

#[test]
fn mlflow_from_snapshot_refuses_unsigned_snapshots_and_forged_sizes_are_damage_not_huge_allocations()
 {
    let src = common::mlflow::small_mlflow_26_db("fsize");
    let (tmp, repo) = temp_repo();
    let id = backup(&repo, &src.name);
    let pg = common::pg::PgDb::new("fsize_pg");
    let pg_url = pg.url();
    let from = ["--from-snapshot", s(&repo), &id];
    let mut args = vec!["mlflow", "migrate"];
    args.extend(from);
    args.extend(["--to", pg_url.as_str()]);
    ok(&args);

    // Unsigned, and the reader trusts a key: the migration refuses before it connects.
    let (public, empty) = (
        keypair(tmp.path(), "k").1,
        common::pg::PgDb::new("fsize_pg2"),
    );
    let r = amlmigrate(&[
        "mlflow",
        "migrate",
        "--from-snapshot",
        s(&repo),
        &id,
        "--verify-key",
        s(&public),
        "--to",
        &empty.url(),
    ]);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("not signed"), "{r:?}");
    let tables = common::pg::psql(
        &empty.name,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert_eq!(tables.trim(), "0", "the refused migration wrote");

    // The manifest now claims a metrics chunk of a petabyte (the part is untouched).
    let path = repo.join("snapshots").join(&id).join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let entry = m["parts"][0]["entries"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| {
            let p = e["path"].as_str().unwrap();
            p.contains("/metrics/") && p.ends_with(".tsv")
        })
        .expect("a metrics chunk");
    entry["size"] = (1u64 << 50).into();
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();

    let mut args = vec!["mlflow", "verify"];
    args.extend(from);
    args.extend(["--to", pg_url.as_str()]);
    let r = amlmigrate(&args);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("metrics"), "{r:?}");
}

#[test]
fn signatures_work_the_same_in_an_s3_repository() {
    let moto = common::s3::Moto::start();
    moto.bucket("signed");
    let src = TestDb::with_fixture("sign_s3");
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "k");
    let repo = "s3://signed/aml";
    moto.ok(&[
        "repo",
        "init",
        "--repo",
        repo,
        "--require-signatures",
        "--trust",
        s(&public),
    ]);
    let id = moto.ok(&[
        "backup",
        "--init",
        "--repo",
        repo,
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
        "--sign-key",
        s(&key),
        "--quiet",
    ]);
    let out = moto.ok(&["verify", "--repo", repo, &id, "--verify-key", s(&public)]);
    assert!(out.contains("signed by key"), "{out}");
    let r = moto.run(&["verify", "--repo", repo, &id]);
    assert_eq!(r.code, 7, "{r:?}");
    let r = moto.run(&[
        "backup",
        "--init",
        "--repo",
        repo,
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
    ]);
    assert_eq!(r.code, 7, "{r:?}");
}

#[test]
fn a_manifest_of_absurd_size_is_damage_not_an_allocation() {
    let src = TestDb::with_fixture("huge_manifest");
    let (_tmp, repo) = temp_repo();
    let id = backup(&repo, &src.name);
    let path = repo.join("snapshots").join(&id).join("manifest.json");
    // Sparse: 300 MiB claimed, nothing written.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let r = amlmigrate(&["verify", "--repo", s(&repo), &id]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("more than any manifest"), "{r:?}");
}
