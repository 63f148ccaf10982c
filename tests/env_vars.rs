//! The `AMLMIGRATE_*` variables stand for their flags in the commands that matter most when
//! they are set once for a session: an encrypted repository's identity for every reader.
//! (That each flag declares its variable in every command is checked on the command line
//! itself, `src/cli/env_tests.rs`.)

mod common;

use common::*;

#[test]
fn readers_of_an_encrypted_repository_take_the_identity_from_amlmigrate_identity() {
    let src = TestDb::create("idenv");
    big_table(&src.name, 200);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let repo_s = repo.to_str().unwrap();
    let (recipient, identity) = age_key(tmp.path(), "key.txt");
    ok(&["repo", "init", "--repo", repo_s, "--encrypt-to", &recipient]);
    let id = ok(&[
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
    ]);
    let dst = TestDb::new("idenv_dst");
    let rename = format!("{}={}", src.name, dst.name);
    let restore = [
        "restore", "--repo", repo_s, &id, "--mysql", MYSQL, "--rename", &rename,
    ];

    // Without an identity a reader is refused, naming the flag: the test can say no.
    let r = amlmigrate(&restore);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--identity"), "{r:?}");

    let env = [("AMLMIGRATE_IDENTITY", identity.to_str().unwrap())];
    let export = tmp.path().join("export");
    for args in [
        &["snapshots", "--repo", repo_s][..],
        &["show", "--repo", repo_s, &id],
        &["verify", "--repo", repo_s, &id],
        &[
            "export",
            "--repo",
            repo_s,
            &id,
            "--to",
            export.to_str().unwrap(),
        ],
        &restore,
    ] {
        let r = amlmigrate_env(args, &env);
        assert_eq!(r.code, 0, "{args:?} with AMLMIGRATE_IDENTITY set: {r:?}");
    }
    assert_eq!(checksums(&dst.name), checksums(&src.name));
}
