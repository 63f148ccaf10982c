//! S3 repositories end to end: the real binary against a real S3 API (moto's server on
//! loopback, installed by scripts/moto.sh) and the real MariaDB: backup → verify → restore,
//! multipart parts, two backups at once, and the errors an operator meets first.

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::s3::{KEY_ID, Moto, SECRET};
use common::*;

impl Moto {
    fn backup_cmd(&self, repo: &str, db: &str) -> Command {
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
            "--quiet",
        ])
        .stdin(Stdio::null())
        .env_remove("AMLMIGRATE_REPO");
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }
}

/// `rows` rows of 1 KiB of random base64: about 0.77 of it survives zstd.
fn random_table(db: &str, rows: u64) {
    sql(
        Some(db),
        &format!(
            "CREATE TABLE noise (id BIGINT PRIMARY KEY, v TEXT) ENGINE=InnoDB; \
             INSERT INTO noise SELECT seq, TO_BASE64(RANDOM_BYTES(768)) FROM seq_1_to_{rows}"
        ),
    );
}

#[test]
fn backup_verify_restore_round_trip_through_s3_with_multipart_parts() {
    let moto = Moto::start();
    moto.bucket("roundtrip");
    let src = TestDb::with_fixture("s3_src");
    random_table(&src.name, 20_000);
    let dst = TestDb::new("s3_dst");
    let repo = "s3://roundtrip/team/aml";

    let t0 = Instant::now();
    let out = moto.ok(&[
        "backup",
        "--init",
        "--repo",
        repo,
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
        "--json",
    ]);
    let backup_s = t0.elapsed().as_secs_f64();
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = j["snapshot"].as_str().unwrap().to_string();
    let stored = j["bytes_stored"].as_u64().unwrap();
    assert!(
        stored > 12 << 20,
        "the part should be well over the 6 MiB upload buffer: {stored}"
    );

    // The pack went up as a multipart upload (its ETag is `<md5>-<parts>`), under the prefix.
    let listing = Command::new("curl")
        .args([
            "-sf",
            &format!(
                "{}/roundtrip?list-type=2&prefix=team/aml/data/",
                moto.endpoint()
            ),
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let pack = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split_once("</Key>").map(|(k, _)| k.to_string()))
        .next()
        .unwrap_or_else(|| panic!("no pack under team/aml/data/: {listing}"));
    let etag = moto.etag("roundtrip", &pack);
    let parts: u32 = etag
        .rsplit_once('-')
        .map(|(_, n)| n.parse().unwrap())
        .unwrap_or(1);
    assert!(parts >= 2, "not a multipart upload: ETag {etag}");

    let list: serde_json::Value =
        serde_json::from_str(&moto.ok(&["snapshots", "--repo", repo, "--json"])).unwrap();
    assert_eq!(list["repository"], repo);
    assert_eq!(list["snapshots"][0]["id"], id.as_str());

    let t1 = Instant::now();
    let v: serde_json::Value =
        serde_json::from_str(&moto.ok(&["verify", "--repo", repo, &id, "--json"])).unwrap();
    let verify_s = t1.elapsed().as_secs_f64();
    assert_eq!(v["verify"]["tables"], 17);
    assert_eq!(v["verify"]["rows"], 57 + 20_000);

    let t2 = Instant::now();
    let r = moto.run(&[
        "restore",
        "--repo",
        repo,
        "latest",
        "--mysql",
        MYSQL,
        "--rename",
        &format!("{}={}", src.name, dst.name),
    ]);
    let restore_s = t2.elapsed().as_secs_f64();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(checksums(&src.name), checksums(&dst.name));
    eprintln!(
        "S3 round trip: {:.1} MiB stored in {parts} multipart parts; backup {backup_s:.1}s, \
         verify {verify_s:.1}s, restore {restore_s:.1}s",
        stored as f64 / (1 << 20) as f64
    );
}

#[test]
fn two_backups_at_once_into_one_new_s3_repository_both_commit_and_verify() {
    let moto = Moto::start();
    moto.bucket("shared");
    let a = TestDb::create("s3_a");
    let b = TestDb::create("s3_b");
    big_table(&a.name, 30_000);
    big_table(&b.name, 30_000);
    let repo = "s3://shared/nightly";
    // Both start on an empty bucket, so both race to create the repository too.
    let pa = moto
        .backup_cmd(repo, &a.name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pb = moto
        .backup_cmd(repo, &b.name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (oa, ob) = (
        pa.wait_with_output().unwrap(),
        pb.wait_with_output().unwrap(),
    );
    assert!(oa.status.success(), "{oa:?}");
    assert!(ob.status.success(), "{ob:?}");
    let ida = String::from_utf8(oa.stdout).unwrap().trim().to_string();
    let idb = String::from_utf8(ob.stdout).unwrap().trim().to_string();
    assert_ne!(ida, idb);
    let list: serde_json::Value =
        serde_json::from_str(&moto.ok(&["snapshots", "--repo", repo, "--json"])).unwrap();
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 2, "{list}");
    for id in [&ida, &idb] {
        let v: serde_json::Value =
            serde_json::from_str(&moto.ok(&["verify", "--repo", repo, id, "--json"])).unwrap();
        assert_eq!(v["verify"]["rows"], 30_000, "{v}");
    }
    // Retention works the same on S3: the older snapshot goes, manifest and parts.
    let p: serde_json::Value =
        serde_json::from_str(&moto.ok(&["prune", "--repo", repo, "--keep-last", "1", "--json"]))
            .unwrap();
    assert_eq!(p["prune"]["removed"].as_array().unwrap().len(), 1, "{p}");
    let list: serde_json::Value =
        serde_json::from_str(&moto.ok(&["snapshots", "--repo", repo, "--json"])).unwrap();
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn a_missing_bucket_is_bad_input_that_names_the_bucket_and_the_fix() {
    let moto = Moto::start();
    let r = moto.run(&["snapshots", "--repo", "s3://no-such-bucket/aml"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("no-such-bucket")
            && r.stderr.contains("does not exist")
            && r.stderr.contains(&moto.endpoint())
            && r.stderr.contains("create it"),
        "{r:?}"
    );
    // A backup does not create the bucket either: same error, nothing written.
    let r = moto.run(&[
        "backup",
        "--init",
        "--repo",
        "s3://no-such-bucket/aml",
        "--mysql",
        MYSQL,
    ]);
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn wrong_credentials_exit_5_naming_the_endpoint_never_the_secret() {
    // With authentication on and no IAM users, every key is unknown.
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let r = moto.run(&["snapshots", "--repo", "s3://any-bucket/aml"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr.contains(&moto.endpoint())
            && r.stderr.contains("credentials")
            && r.stderr.contains("AWS_SECRET_ACCESS_KEY"),
        "{r:?}"
    );
    // The check in `run` asserted that the secret appears nowhere in the output.
}

#[test]
fn an_unreachable_endpoint_exits_5_naming_it() {
    let closed = common::gate::ClosedPort::new();
    let port = closed.port;
    let endpoint = format!("http://127.0.0.1:{port}");
    let r = amlmigrate_env(
        &["snapshots", "--repo", "s3://unreachable/aml"],
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("AWS_CONFIG_FILE", "/dev/null"),
        ],
    );
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr.contains(&endpoint) && !r.all().contains(SECRET),
        "{r:?}"
    );
}

#[test]
fn a_profile_whose_credentials_come_from_sso_a_process_or_a_role_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        "[profile sso]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = ops\n\
         [profile proc]\ncredential_process = /bin/false\n\
         [profile role]\naws_access_key_id = AKSTATIC\naws_secret_access_key = static-secret\n\
         role_arn = arn:aws:iam::1:role/ops\nsource_profile = keys\n\
         [profile keys]\naws_access_key_id = AKSTATIC\naws_secret_access_key = static-secret\n",
    )
    .unwrap();
    let closed = common::gate::ClosedPort::new();
    let endpoint = format!("http://127.0.0.1:{}", closed.port);
    let run = |profile: &str| {
        amlmigrate_env(
            &["snapshots", "--repo", "s3://bucket/aml"],
            &[
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", ""),
                ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
                ("AWS_CONFIG_FILE", config.to_str().unwrap()),
                ("AWS_PROFILE", profile),
            ],
        )
    };
    for (profile, key) in [
        ("sso", "sso_session"),
        ("proc", "credential_process"),
        ("role", "role_arn"),
    ] {
        let r = run(profile);
        assert_eq!(r.code, 2, "{profile}: {r:?}");
        assert!(
            r.stderr.contains(&format!("AWS profile \"{profile}\""))
                && r.stderr.contains(key)
                && r.stderr.contains("nothing was sent")
                && r.stderr.contains(&format!(
                    "aws configure export-credentials --profile {profile}"
                ))
                && !r.all().contains("static-secret"),
            "{profile}: {r:?}"
        );
    }
    // A profile of static keys is read as before: it gets as far as the (closed) endpoint.
    let r = run("keys");
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains(&endpoint), "{r:?}");
}
