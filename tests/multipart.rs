//! A backup killed while uploading leaves an incomplete S3 multipart upload that S3 keeps (and
//! bills) until someone aborts it: `prune` aborts those under the repository's snapshots/,
//! against a real S3 API (moto, which reports every upload as started in 2010, so all are
//! older than a day; the age rule itself is a unit test of repo::multipart).

mod common;

use std::process::Command;

use common::s3::{KEY_ID, Moto, SECRET, python};
use common::*;
use serde_json::Value;

/// Runs boto3 against moto: `op` is `start KEY` (an upload with one part, never completed) or
/// `keys` (the keys of the incomplete uploads, one a line).
fn boto(moto: &Moto, bucket: &str, op: &[&str]) -> String {
    let script = r#"
import sys, boto3
endpoint, key_id, secret, bucket, op = sys.argv[1:6]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key_id,
                  aws_secret_access_key=secret, region_name="us-east-1")
if op == "start":
    key = sys.argv[6]
    u = s3.create_multipart_upload(Bucket=bucket, Key=key)
    s3.upload_part(Bucket=bucket, Key=key, UploadId=u["UploadId"], PartNumber=1, Body=b"x" * 1024)
else:
    for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        print(u["Key"])
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args([&moto.endpoint(), KEY_ID, SECRET, bucket])
        .args(op)
        .output()
        .unwrap();
    assert!(out.status.success(), "boto3 {op:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn incomplete(moto: &Moto, bucket: &str) -> Vec<String> {
    let mut keys: Vec<String> = boto(moto, bucket, &["keys"])
        .lines()
        .map(str::to_string)
        .collect();
    keys.sort();
    keys
}

#[test]
fn prune_aborts_incomplete_uploads_under_the_repository_and_says_how_many() {
    let moto = Moto::start();
    moto.bucket("leftovers");
    let src = TestDb::with_fixture("mp_src");
    let repo = "s3://leftovers/team/aml";
    moto.ok(&[
        "backup",
        "--init",
        "--repo",
        repo,
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
        "--quiet",
    ]);
    let ours = [
        "team/aml/snapshots/20261101T000000Z-000001/parts/mysql-a.tar.zst",
        "team/aml/snapshots/20261102T000000Z-000002/parts/kubernetes.tar.zst",
    ];
    let theirs = [
        "team/other/snapshots/20261101T000000Z-000001/parts/mysql-a.tar.zst",
        "team/aml-archive/x.bin",
    ];
    for k in ours.iter().chain(&theirs) {
        boto(&moto, "leftovers", &["start", k]);
    }
    assert_eq!(incomplete(&moto, "leftovers").len(), 4);

    let out = moto.ok(&[
        "prune",
        "--repo",
        repo,
        "--keep-last",
        "1",
        "--dry-run",
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["prune"]["multipart"]["aborted"], 2, "{v}");
    assert_eq!(incomplete(&moto, "leftovers").len(), 4, "a dry run aborted");

    let out = moto.ok(&["prune", "--repo", repo, "--keep-last", "1"]);
    assert!(
        out.contains("incomplete multipart uploads: 2 older than a day aborted"),
        "{out}"
    );
    let mut left = theirs.map(str::to_string).to_vec();
    left.sort();
    assert_eq!(incomplete(&moto, "leftovers"), left);

    let out = moto.ok(&["prune", "--repo", repo, "--keep-last", "1"]);
    assert!(
        out.contains("incomplete multipart uploads: 0 older than a day aborted"),
        "{out}"
    );
}
