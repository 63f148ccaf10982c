//! What a repository's own objects may decide, and what they may not: the marker cannot switch
//! a backup's encryption off, a manifest in clear is not read from an encrypted repository, and
//! a repository appears only where one was made on purpose.

mod common;

use std::path::Path;

use common::s3::Moto;
use common::*;

fn edit_marker(repo: &Path, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = repo.join("amlmigrate-repo.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(m.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    for f in files_under(from) {
        let dst = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dst).unwrap();
    }
}

#[test]
fn a_backup_told_to_encrypt_refuses_a_marker_rewritten_to_plain_naming_both() {
    let src = TestDb::create("trust_enc");
    big_table(&src.name, 300);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let repo_s = repo.to_str().unwrap();
    let (recipient, _identity) = age_key(tmp.path(), "key.txt");
    ok(&["repo", "init", "--repo", repo_s, "--encrypt-to", &recipient]);
    let base = [
        "backup",
        "--repo",
        repo_s,
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
        "--encrypt-to",
        &recipient,
        "--quiet",
    ];
    ok(&base);
    let saved = std::fs::read(repo.join("amlmigrate-repo.json")).unwrap();

    // Whoever can write the bucket removes the encryption settings: the next backup (the
    // CronJob's has the same flags) refuses and writes nothing, naming marker and recipient.
    edit_marker(&repo, |m| {
        m.remove("encryption");
    });
    let before = files_under(&repo);
    for extra in [&[][..], &["--init"][..]] {
        let r = amlmigrate(&[&base[..], extra].concat());
        assert_eq!(r.code, 4, "{r:?}");
        for want in ["amlmigrate-repo.json", "not encrypted", &recipient, repo_s] {
            assert!(r.stderr.contains(want), "{want} not named: {r:?}");
        }
        assert_eq!(files_under(&repo), before, "the refused backup wrote");
    }

    // Saying the repository is plain when its marker says encrypted is refused too.
    std::fs::write(repo.join("amlmigrate-repo.json"), &saved).unwrap();
    let r = amlmigrate(&[&base[..], &["--unencrypted-repo"]].concat());
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("--unencrypted-repo"), "{r:?}");
    assert!(r.stderr.contains("encrypted"), "{r:?}");
}

#[test]
fn a_reader_refuses_a_manifest_in_clear_in_an_encrypted_repository() {
    let src = TestDb::create("trust_clear");
    big_table(&src.name, 300);
    let tmp = tempfile::tempdir().unwrap();
    let (enc, plain) = (tmp.path().join("enc"), tmp.path().join("plain"));
    let (enc_s, plain_s) = (enc.to_str().unwrap(), plain.to_str().unwrap());
    let (recipient, identity) = age_key(tmp.path(), "key.txt");
    let identity_s = identity.to_str().unwrap();
    ok(&["repo", "init", "--repo", enc_s, "--encrypt-to", &recipient]);
    let backup = |repo: &str, extra: &[&str]| {
        ok(&[
            &[
                "backup",
                "--repo",
                repo,
                "--mysql",
                MYSQL,
                "--databases",
                &src.name,
                "--quiet",
            ][..],
            extra,
        ]
        .concat())
    };
    let real = backup(enc_s, &["--encrypt-to", &recipient]);
    // A snapshot written in clear elsewhere (packs, index, manifest) is planted in the
    // encrypted repository, as anyone who can add objects to the bucket could.
    let forged = backup(plain_s, &["--init"]);
    for dir in ["data", "index", "snapshots"] {
        copy_tree(&plain.join(dir), &enc.join(dir));
    }
    for cmd in ["show", "verify"] {
        let r = amlmigrate(&[cmd, "--repo", enc_s, "--identity", identity_s, &forged]);
        assert_eq!(r.code, 7, "{cmd} read a manifest in clear: {r:?}");
        assert!(r.stderr.contains("in clear"), "{r:?}");
        assert!(r.stderr.contains(&forged), "{r:?}");
    }
    // The real snapshot still reads.
    ok(&["verify", "--repo", enc_s, "--identity", identity_s, &real]);
}

#[test]
fn only_repo_init_and_backup_init_create_a_repository() {
    let src = TestDb::create("trust_init");
    big_table(&src.name, 50);
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("bakups");
    let typo_s = typo.to_str().unwrap();
    let backup = |extra: &[&str]| {
        amlmigrate(
            &[
                &[
                    "backup",
                    "--repo",
                    typo_s,
                    "--mysql",
                    MYSQL,
                    "--databases",
                    &src.name,
                    "--quiet",
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    let r = backup(&[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains(typo_s), "{r:?}");
    assert!(r.stderr.contains("repo init"), "{r:?}");
    assert!(!typo.exists(), "a backup without --init created {typo_s}");
    // An empty folder is no repository either.
    std::fs::create_dir(&typo).unwrap();
    let r = backup(&[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(files_under(&typo).is_empty(), "{:?}", files_under(&typo));
    for args in [
        &["snapshots", "--repo", typo_s][..],
        &["prune", "--repo", typo_s, "--keep-last", "1"][..],
        &["verify", "--repo", typo_s, "latest"][..],
    ] {
        let r = amlmigrate(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(typo_s), "{r:?}");
        assert!(files_under(&typo).is_empty(), "{args:?} wrote");
    }
    // With --init the backup creates it (plain: no --encrypt-to).
    let r = backup(&["--init"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(typo.join("amlmigrate-repo.json").exists());
}

#[test]
fn a_backup_into_an_s3_prefix_without_a_repository_creates_nothing() {
    let moto = Moto::start();
    moto.bucket("typo");
    let r = moto.run(&[
        "backup",
        "--repo",
        "s3://typo/prdo",
        "--mysql",
        MYSQL,
        "--databases",
        "mysql",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("s3://typo/prdo"), "{r:?}");
    let listing = std::process::Command::new("curl")
        .args(["-sf", &format!("{}/typo?list-type=2", moto.endpoint())])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("<KeyCount>0</KeyCount>"), "{listing}");
}
