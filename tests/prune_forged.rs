//! Prune deletes only what it proved unused: objects added to the repository by whoever can
//! add objects (the backups' credentials in an append-only deployment) cannot make it delete
//! a pack a kept snapshot needs. Locally, and on S3 where the backups' credentials may add but
//! not delete (an IAM policy moto enforces) and prune runs with full ones.

mod common;

use std::process::Command;

use common::s3::Moto;
use common::*;
use serde_json::{Value, json};

/// Every chunk id the index objects list, and the packs they name.
fn indexed(indexes: &[Value]) -> (Vec<String>, Vec<String>) {
    let (mut chunks, mut packs) = (Vec::new(), Vec::new());
    for f in indexes {
        for p in f["packs"].as_array().unwrap() {
            packs.push(p["id"].as_str().unwrap().to_string());
            for b in p["blobs"].as_array().unwrap() {
                chunks.push(b[0].as_str().unwrap().to_string());
            }
        }
    }
    chunks.sort();
    chunks.dedup();
    (chunks, packs)
}

/// An index object claiming that every chunk sits in pack `pack`, which they fill (so that
/// the pack looks wholly live and every other pack unused).
fn forged_index(chunks: &[String], pack: &str) -> Value {
    json!({"packs": [{
        "id": pack,
        "size": chunks.len(),
        "blobs": chunks.iter().enumerate().map(|(i, c)| json!([c, i, 1, 1])).collect::<Vec<_>>(),
    }]})
}

fn three_snapshots(repo: &str, run: &dyn Fn(&[&str]) -> String) -> (Vec<String>, Vec<TestDb>) {
    let mut ids = Vec::new();
    let mut dbs = Vec::new();
    for n in 0..3 {
        let db = TestDb::create(&format!("pforge{n}"));
        big_table(&db.name, 400 + 100 * n);
        ids.push(run(&[
            "backup",
            "--init",
            "--repo",
            repo,
            "--mysql",
            MYSQL,
            "--databases",
            &db.name,
            "--quiet",
        ]));
        dbs.push(db);
    }
    (ids, dbs)
}

#[test]
fn an_added_index_claiming_every_live_chunk_in_one_pack_does_not_make_prune_delete_packs() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let repo_s = repo.to_str().unwrap();
    let (ids, _dbs) = three_snapshots(repo_s, &|a| ok(a));
    let indexes: Vec<Value> = files_under(&repo.join("index"))
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
        .collect();
    let (chunks, packs) = indexed(&indexes);
    assert!(packs.len() >= 3, "{packs:?}");
    let packs_before = files_under(&repo.join("data"));

    // Added objects: an index naming first (so its claims come first) that puts every chunk
    // into one real pack, and a pack of garbage whose trailer claims them all too.
    std::fs::write(
        repo.join("index/000-forged.json"),
        serde_json::to_vec(&forged_index(&chunks, &packs[0])).unwrap(),
    )
    .unwrap();
    let forged_pack = "f".repeat(32);
    let trailer = {
        let t = json!({"blobs": chunks.iter().map(|c| json!([c, 0, 1, 1])).collect::<Vec<_>>()});
        let mut body = zstd::encode_all(&serde_json::to_vec(&t).unwrap()[..], 3).unwrap();
        let len = body.len() as u32;
        let mut out = vec![0u8; 16];
        out.append(&mut body);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(b"AMLPACK\x01");
        out
    };
    std::fs::create_dir_all(repo.join("data/ff")).unwrap();
    std::fs::write(repo.join("data/ff").join(&forged_pack), trailer).unwrap();

    // Every snapshot is kept: no pack a snapshot needs may go.
    let r = amlmigrate(&["prune", "--repo", repo_s, "--keep-last", "5", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    for p in &packs_before {
        assert!(p.exists(), "prune deleted live pack {}", p.display());
    }
    // The rewritten index lists what the packs hold: every snapshot reads again.
    assert!(!repo.join("index/000-forged.json").exists());
    for id in &ids {
        ok(&["verify", "--repo", repo_s, id]);
    }
    // Once the snapshots go, their packs go too: the sweep still frees space.
    let r = amlmigrate(&["prune", "--repo", repo_s, "--keep-last", "1", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let j: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        j["prune"]["sweep"]["packs_removed"].as_u64().unwrap() >= 2,
        "{j}"
    );
    ok(&["verify", "--repo", repo_s, &ids[2]]);
}

/// boto3 in moto's venv against `endpoint`; runs `script` with `s3` bound, returns its stdout.
fn boto(endpoint: &str, script: &str) -> String {
    let prelude = format!(
        "import boto3, json\n\
         s3 = boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1', \
         aws_access_key_id='{}', aws_secret_access_key='{}')\n",
        common::s3::KEY_ID,
        common::s3::SECRET
    );
    let out = Command::new(common::s3::python())
        .args(["-c", &format!("{prelude}{script}")])
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn append_only_backups_cannot_delete_and_their_added_index_cannot_make_prune_delete() {
    let moto = Moto::start();
    moto.bucket("aml-append");
    let endpoint = moto.endpoint();
    // The append-only deployment docs/security.md describes: while backups run, a bucket policy
    // refuses every delete but of lock objects (moto applies a bucket policy to every
    // principal; on AWS it names the backups' role). Prune runs later with full rights.
    let repo_arn = "arn:aws:s3:::aml-append/prod";
    let policy = json!({"Version": "2012-10-17", "Statement": [{
    "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": [
        format!("{repo_arn}/data/*"), format!("{repo_arn}/index/*"),
        format!("{repo_arn}/snapshots/*"), format!("{repo_arn}/amlmigrate-*"),
        format!("{repo_arn}/pins/*"),
    ]}]});
    let policy = serde_json::to_string(&policy).unwrap();
    boto(
        &endpoint,
        &format!("s3.put_bucket_policy(Bucket='aml-append', Policy={policy:?})\n"),
    );
    let repo = "s3://aml-append/prod";
    let (ids, _dbs) = three_snapshots(repo, &|a| moto.ok(a));

    // Deletes are refused, so prune cannot remove anything: the snapshots stay whole.
    let r = moto.run(&["prune", "--repo", repo, "--keep-last", "1"]);
    assert_ne!(r.code, 0, "{r:?}");
    for id in &ids {
        moto.ok(&["verify", "--repo", repo, id]);
    }

    // What the backups' credentials can do: add an index object claiming that every chunk
    // sits in one pack.
    let listing = boto(
        &endpoint,
        "out = []\n\
         for o in s3.list_objects_v2(Bucket='aml-append', Prefix='prod/index/')['Contents']:\n\
         \x20   out.append(json.loads(s3.get_object(Bucket='aml-append', Key=o['Key'])['Body'].read()))\n\
         print(json.dumps(out))\n",
    );
    let indexes: Vec<Value> = serde_json::from_str(&listing).unwrap();
    let (chunks, packs) = indexed(&indexes);
    let count_packs =
        "print(len(s3.list_objects_v2(Bucket='aml-append', Prefix='prod/data/')['Contents']))\n";
    let packs_before = boto(&endpoint, count_packs);
    assert_eq!(packs_before, packs.len().to_string());
    let forged = serde_json::to_string(&forged_index(&chunks, &packs[0])).unwrap();
    boto(
        &endpoint,
        &format!(
            "s3.put_object(Bucket='aml-append', Key='prod/index/000-forged.json', Body={forged:?})\n"
        ),
    );

    // Prune with full rights (no policy in the way) keeps every snapshot: no pack goes.
    boto(&endpoint, "s3.delete_bucket_policy(Bucket='aml-append')\n");
    let r = moto.run(&["prune", "--repo", repo, "--keep-last", "5"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(boto(&endpoint, count_packs), packs_before);
    for id in &ids {
        moto.ok(&["verify", "--repo", repo, id]);
    }
}
