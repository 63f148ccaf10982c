//! MLflow artifacts in S3 (MinIO on AML), end to end: a real MLflow 2.6.0 server keeps its
//! artifacts in a moto S3 bucket, `mlflow migrate` copies them to a second bucket (live, and from
//! a snapshot whose repository is on another S3), and a real MLflow 3.1.1 server serving that
//! second bucket returns every artifact's bytes through its REST API as 2.6 did.
//!
//! The artifact store's endpoint and keys come from an AWS profile (`?profile=mlflow`); the
//! AWS_* variables point at the repository's S3, a different moto server that has no artifact
//! bucket, so using the wrong settings would fail.

mod common;

use common::mlflow::*;
use common::pg::PgDb;
use common::s3::{KEY_ID, Moto};
use common::*;
use std::path::Path;

const ARTIFACT_SECRET: &str = "artifact-store-secret-never-printed";

/// The environment MLflow's own S3 client (boto3) needs to reach the artifact store.
fn mlflow_env(store: &Moto) -> Vec<(&'static str, String)> {
    vec![
        ("MLFLOW_S3_ENDPOINT_URL", store.endpoint()),
        ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY", ARTIFACT_SECRET.into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
    ]
}

fn start(venv: &Path, backend: &str, artifacts: &str, store: &Moto) -> Server {
    let env = mlflow_env(store);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with_env(venv, backend, artifacts, &env)
}

/// Runs amlmigrate with the repository's S3 in the AWS_* variables and the artifact store's in
/// profile `mlflow` of shared files written under `aws`.
fn run(repo_s3: &Moto, aws: &Path, args: &[&str]) -> Run {
    let mut env = repo_s3.env();
    env.retain(|(k, _)| !k.starts_with("AWS_CONFIG_FILE") && !k.starts_with("AWS_SHARED"));
    env.push(("AWS_CONFIG_FILE", aws.join("config").display().to_string()));
    env.push((
        "AWS_SHARED_CREDENTIALS_FILE",
        aws.join("credentials").display().to_string(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = amlmigrate_env(args, &env);
    assert!(
        !r.all().contains(ARTIFACT_SECRET) && !r.all().contains(common::s3::SECRET),
        "a secret key leaked into the output of {args:?}: {r:?}"
    );
    r
}

/// Reads (`get`) or writes (`put`, with `data`) one object through boto3: moto refuses
/// unsigned reads and takes an unsigned form-encoded body for a form.
fn s3_object(store: &Moto, op: &str, bucket: &str, key: &str, data: &str) -> Vec<u8> {
    let out = std::process::Command::new(common::s3::python())
        .args([
            "-c",
            "import boto3,sys; op,url,b,k,d=sys.argv[1:6]; s=boto3.client('s3',endpoint_url=url,\
             region_name='us-east-1',aws_access_key_id='k',aws_secret_access_key='s'); \
             sys.stdout.buffer.write(s.get_object(Bucket=b,Key=k)['Body'].read()) if op=='get' \
             else s.put_object(Bucket=b,Key=k,Body=d.encode())",
            op,
            &store.endpoint(),
            bucket,
            key,
            data,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{op} {bucket}/{key}: {out:?}");
    out.stdout
}

#[test]
fn mlflow_3_1_1_serves_the_2_6_artifacts_from_another_bucket_after_migration() {
    let (v26, v311) = venvs().clone();
    let tmp = tempfile::tempdir().unwrap();
    let store = Moto::start(); // where MLflow keeps artifacts (AML's MinIO)
    let backups = Moto::start(); // the snapshot repository's S3, somewhere else
    for b in ["mlflow-26", "mlflow-311", "mlflow-311-snap"] {
        store.bucket(b);
    }
    backups.bucket("aml-backups");
    let aws = tmp.path().join("aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("config"),
        format!(
            "[profile mlflow]\nendpoint_url = {}\nregion = us-east-1\n",
            store.endpoint()
        ),
    )
    .unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[mlflow]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {ARTIFACT_SECRET}\n"
        ),
    )
    .unwrap();

    let src = TestDb::create("mlf_s3_src");
    let before = {
        let server = start(
            &v26,
            &format!("mysql+pymysql://root@127.0.0.1:3306/{}", src.name),
            "s3://mlflow-26/artifacts",
            &store,
        );
        python(&v26, &[harness(), "seed-artifacts", &server.url]);
        dump(&server, &tmp.path().join("before.json"))
    };
    let files: usize = before["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["artifacts"].as_object().unwrap().len())
        .sum();
    assert_eq!(files, 10, "the seeded runs' artifacts: {before}");

    let from = "s3://mlflow-26/artifacts?profile=mlflow";
    let target = PgDb::new("mlf_s3_dst");
    let migrate = |to_db: &PgDb, artifacts_to: &str| {
        run(
            &backups,
            &aws,
            &[
                "mlflow",
                "migrate",
                "--from",
                &format!("{MYSQL}/{}", src.name),
                "--to",
                &to_db.url(),
                "--artifacts-from",
                from,
                "--artifacts-to",
                artifacts_to,
                "--json",
            ],
        )
    };
    let to = "s3://mlflow-311/artifacts?profile=mlflow";
    let r = migrate(&target, to);
    assert_eq!(r.code, 0, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["migrate"]["artifacts"]["files"], files);
    assert_eq!(j["migrate"]["artifacts"]["already_there"], 0);
    assert!(j["migrate"]["artifacts"]["bytes"].as_u64().unwrap() > 7 * 1024 * 1024);

    // A re-run finds every object there with the same bytes and copies nothing.
    let again = migrate(&target, to);
    assert_eq!(again.code, 0, "{again:?}");
    let j: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(j["migrate"]["outcome"], "already migrated");
    assert_eq!(j["migrate"]["artifacts"]["already_there"], files);

    // An object with other bytes at one of the names is never overwritten.
    let run0 = before["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "run-0")
        .unwrap();
    let key = format!(
        "artifacts/{}/{}/artifacts/outputs/notes.txt",
        run0["experiment"].as_str().unwrap(),
        run0["id"].as_str().unwrap()
    );
    let clash = PgDb::new("mlf_s3_clash");
    store.bucket("mlflow-clash");
    s3_object(&store, "put", "mlflow-clash", &key, "someone else's notes");
    let r = migrate(&clash, "s3://mlflow-clash/artifacts?profile=mlflow");
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("outputs/notes.txt")
            && r.stderr.contains("nothing there was overwritten"),
        "{r:?}"
    );
    assert_eq!(
        s3_object(&store, "get", "mlflow-clash", &key, ""),
        b"someone else's notes"
    );

    // Through a snapshot: the repository on the other S3 (AWS_* variables), the artifacts read
    // from the store (profile) into the snapshot, and out of it into a third bucket.
    let repo = "s3://aml-backups/prod";
    let b = run(
        &backups,
        &aws,
        &[
            "backup",
            "--init",
            "--repo",
            repo,
            "--mysql",
            MYSQL,
            "--databases",
            &src.name,
            "--mlflow-artifacts",
            from,
            "--quiet",
        ],
    );
    assert_eq!(b.code, 0, "{b:?}");
    let from_snapshot = PgDb::new("mlf_s3_snap");
    let r = run(
        &backups,
        &aws,
        &[
            "mlflow",
            "migrate",
            "--from-snapshot",
            repo,
            "latest",
            "--to",
            &from_snapshot.url(),
            "--artifacts-to",
            "s3://mlflow-311-snap/artifacts?profile=mlflow",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["migrate"]["artifacts"]["files"], files);

    // Real MLflow 3.1.1 servers on each result, serving the second and third buckets, return
    // the same runs and the same artifact bytes as 2.6 did.
    for (db, bucket) in [
        (&target, "s3://mlflow-311/artifacts"),
        (&from_snapshot, "s3://mlflow-311-snap/artifacts"),
    ] {
        let server = start(
            &v311,
            &db.url().replace("postgres://", "postgresql://"),
            bucket,
            &store,
        );
        let after = dump(&server, &tmp.path().join("after.json"));
        assert_eq!(
            after, before,
            "MLflow 3.1.1 on {bucket} serves something else"
        );
    }
}
