//! The deduplicated repository (format 2) end to end: what a second snapshot stores, damage in
//! a pack, prune's sweep, and backups and prunes running at the same moment.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn packs(repo: &Path) -> Vec<PathBuf> {
    files_under(&repo.join("data"))
}

#[test]
fn a_second_snapshot_stores_almost_nothing_and_a_small_change_little() {
    let src = TestDb::create("dedup");
    big_table(&src.name, 60_000);
    let (_tmp, repo) = temp_repo();
    let (_, first) = backup_stored(&repo, &src.name);
    let (_, second) = backup_stored(&repo, &src.name);
    assert!(first > 500_000, "first snapshot stored {first} bytes");
    assert!(
        second * 100 < first,
        "an unchanged database added {second} bytes after {first}"
    );
    // 1 % of the rows appended, 0.1 % updated: recent ones, as job records and runs are (a
    // scattered update costs one chunk, about 64 KiB before compression, each).
    sql(
        Some(&src.name),
        "INSERT INTO big SELECT seq, REPEAT(CONCAT('new-', seq), 20), seq / 3 FROM seq_60001_to_60600; \
         UPDATE big SET v = CONCAT(v, '!') WHERE id BETWEEN 59000 AND 59059",
    );
    let (id, third) = backup_stored(&repo, &src.name);
    assert!(
        third * 100 < first * 10,
        "a 1 % change added {third} bytes after {first}"
    );
    ok(&["verify", "--repo", repo.to_str().unwrap(), &id]);
    let dst = TestDb::new("dedup_dst");
    let r = restore_renamed(&repo, &id, &src.name, &dst.name);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(checksums(&dst.name), checksums(&src.name));
}

#[test]
fn snapshots_shows_what_each_snapshot_holds_beside_what_it_added() {
    let src = TestDb::create("dedup_sizes");
    big_table(&src.name, 20_000);
    let (_tmp, repo) = temp_repo();
    let (first, first_added) = backup_stored(&repo, &src.name);
    let (second, second_added) = backup_stored(&repo, &src.name);
    let out = ok(&["snapshots", "--repo", repo.to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let listed = j["snapshots"].as_array().unwrap();
    let field = |i: usize, k: &str| listed[i][k].as_u64().unwrap_or_else(|| panic!("{k}: {j}"));
    assert_eq!(listed[0]["id"], first.as_str());
    assert_eq!(listed[1]["id"], second.as_str());
    // The same data held twice; the second added almost nothing.
    assert_eq!(field(1, "logical_bytes"), field(0, "logical_bytes"));
    assert_eq!(field(0, "added_bytes"), first_added);
    assert_eq!(field(1, "added_bytes"), second_added);
    assert!(field(1, "logical_bytes") > 100 * second_added, "{j}");
    // What it holds is at least the table's TSV: 20,000 rows of about 190 bytes.
    assert!(field(1, "logical_bytes") > 20_000 * 150, "{j}");

    let human = ok(&["snapshots", "--repo", repo.to_str().unwrap()]);
    let header: Vec<&str> = human.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header[..6],
        ["ID", "TIME", "(UTC)", "SIZE", "ADDED", "ROWS"],
        "{human}"
    );
    let row: Vec<&str> = human
        .lines()
        .find(|l| l.starts_with(&second))
        .unwrap()
        .split_whitespace()
        .collect();
    // id, date, time, then SIZE and ADDED as "<number> <unit>" each.
    let (size, added) = (
        format!("{} {}", row[3], row[4]),
        format!("{} {}", row[5], row[6]),
    );
    assert!(size.ends_with("MiB"), "{human}");
    assert_ne!(size, added, "{human}");
}

#[test]
fn a_flipped_byte_in_a_pack_names_the_part_and_entry() {
    let src = TestDb::create("packflip");
    big_table(&src.name, 20_000);
    let (_tmp, repo) = temp_repo();
    let id = backup(&repo, &src.name);
    let pack = packs(&repo).pop().expect("a pack");
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&pack, bytes).unwrap();
    let r = amlmigrate(&["verify", "--repo", repo.to_str().unwrap(), &id, "--json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["error"]["kind"], "damaged");
    assert_eq!(j["error"]["part"], format!("mysql-{}", src.name), "{j}");
    let entry = j["error"]["entry"].as_str().unwrap();
    assert!(
        entry.starts_with(&format!("mysql/{}/big/", src.name)),
        "{entry}"
    );
    // A missing pack is damage too, named the same way.
    std::fs::remove_file(packs(&repo).pop().unwrap()).unwrap();
    let r = amlmigrate(&["verify", "--repo", repo.to_str().unwrap(), &id]);
    assert_eq!(r.code, 3, "{r:?}");
}

#[test]
fn prune_sweeps_the_chunks_only_removed_snapshots_used() {
    let a = TestDb::create("sweep_a");
    big_table(&a.name, 30_000);
    let b = TestDb::create("sweep_b");
    big_table(&b.name, 30_000);
    sql(Some(&b.name), "UPDATE big SET v = CONCAT('b', v)");
    let (_tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap();
    backup(&repo, &a.name);
    let with_a = pack_bytes(&repo);
    let keep = backup(&repo, &b.name);
    assert!(pack_bytes(&repo) > with_a * 3 / 2);
    let out = ok(&["prune", "--repo", repo_s, "--keep-last", "1", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        j["prune"]["sweep"]["packs_removed"].as_u64().unwrap() >= 1,
        "{j}"
    );
    let after = pack_bytes(&repo);
    assert!(
        after < with_a * 6 / 5,
        "{after} bytes left; database b alone took about {with_a}"
    );
    ok(&["verify", "--repo", repo_s, &keep]);
    // Nothing more to sweep the second time.
    let out = ok(&["prune", "--repo", repo_s, "--keep-last", "1", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["prune"]["sweep"]["packs_removed"], 0, "{j}");
}

/// Backups of two databases alternate while prune keeps only the newest snapshot: each prune
/// makes the other database's chunks unused while a backup of that database may be reusing
/// them. The locks must keep every committed snapshot whole.
#[test]
fn backups_and_prunes_running_at_once_lose_no_chunk() {
    let a = TestDb::create("race_a");
    big_table(&a.name, 15_000);
    let b = TestDb::create("race_b");
    big_table(&b.name, 15_000);
    sql(Some(&b.name), "UPDATE big SET v = CONCAT('b', v)");
    let (_tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap().to_string();
    backup(&repo, &a.name);
    let rounds = 6;
    let backuper = |first: String, second: String| {
        let repo_s = repo_s.clone();
        std::thread::spawn(move || {
            let mut ids = Vec::new();
            for i in 0..rounds {
                let db = if i % 2 == 0 { &first } else { &second };
                let r = amlmigrate(&[
                    "backup",
                    "--init",
                    "--repo",
                    &repo_s,
                    "--mysql",
                    MYSQL,
                    "--databases",
                    db,
                    "--json",
                ]);
                assert_eq!(r.code, 0, "backup {i}: {r:?}");
                let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
                ids.push(j["snapshot"].as_str().unwrap().to_string());
            }
            ids
        })
    };
    let t1 = backuper(a.name.clone(), b.name.clone());
    let t2 = backuper(b.name.clone(), a.name.clone());
    // Prunes run back to back for as long as the backups do.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pruner = {
        let (repo_s, done) = (repo_s.clone(), done.clone());
        std::thread::spawn(move || {
            let mut swept = 0;
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let r = amlmigrate(&["prune", "--repo", &repo_s, "--keep-last", "1", "--json"]);
                assert_eq!(r.code, 0, "prune {i}: {r:?}");
                let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
                let sweep = &j["prune"]["sweep"];
                swept += sweep["packs_removed"].as_u64().unwrap()
                    + sweep["orphan_packs"].as_u64().unwrap();
                i += 1;
            }
            swept
        })
    };
    let ids: Vec<String> = [t1, t2]
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let swept = pruner.join().unwrap();
    assert!(
        swept > 0,
        "the prunes never removed a pack: the race was not run"
    );
    assert_eq!(ids.len(), rounds * 2);
    let list: serde_json::Value =
        serde_json::from_str(&ok(&["snapshots", "--repo", &repo_s, "--json"])).unwrap();
    let left: Vec<String> = list["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!left.is_empty());
    for id in &left {
        let r = amlmigrate(&["verify", "--repo", &repo_s, id]);
        assert_eq!(r.code, 0, "snapshot {id} lost chunks: {r:?}");
    }
    assert!(
        files_under(&repo.join("locks")).is_empty(),
        "locks were left behind"
    );
}

#[test]
fn an_encrypted_repository_stores_nothing_in_clear_and_backups_need_only_the_recipient() {
    let src = TestDb::create("enc");
    big_table(&src.name, 5_000);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let repo_s = repo.to_str().unwrap();
    let (recipient, identity) = age_key(tmp.path(), "key.txt");
    let (other, other_identity) = age_key(tmp.path(), "other.txt");
    let identity_s = identity.to_str().unwrap();
    ok(&["repo", "init", "--repo", repo_s, "--encrypt-to", &recipient]);

    // A backup without the recipient, or with another one, is refused before it writes.
    let base = [
        "backup",
        "--init",
        "--repo",
        repo_s,
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
    ];
    let r = amlmigrate(&base);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--encrypt-to"), "{r:?}");
    let r = amlmigrate(&[&base[..], &["--encrypt-to", &other]].concat());
    assert_eq!(r.code, 2, "{r:?}");
    let id = {
        let out = ok(&[&base[..], &["--encrypt-to", &recipient, "--json"]].concat());
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        j["snapshot"].as_str().unwrap().to_string()
    };
    // A second backup deduplicates as well as an unencrypted one.
    let out = ok(&[&base[..], &["--encrypt-to", &recipient, "--json"]].concat());
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(j["bytes_stored"].as_u64().unwrap() < 20_000, "{j}");

    // Nothing in the repository is readable: not the rows, not a table name, not the
    // recipient, not a plain chunk id.
    let plain_id = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"schema"))
    };
    for f in files_under(&repo) {
        let bytes = std::fs::read(&f).unwrap();
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if let Ok(plain) = zstd::decode_all(&bytes[..]) {
            text.push_str(&String::from_utf8_lossy(&plain));
        }
        for secret in ["row-1", "big", &src.name, &recipient, &plain_id] {
            assert!(
                !text.contains(secret),
                "{secret} in clear in {}",
                f.display()
            );
        }
    }

    // Readers need the identity; with it everything works, and prune needs none.
    let r = amlmigrate(&["verify", "--repo", repo_s, &id]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--identity"), "{r:?}");
    let r = amlmigrate(&[
        "verify",
        "--repo",
        repo_s,
        &id,
        "--identity",
        other_identity.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    ok(&["verify", "--repo", repo_s, &id, "--identity", identity_s]);
    let dst = TestDb::new("enc_dst");
    ok(&[
        "restore",
        "--repo",
        repo_s,
        &id,
        "--mysql",
        MYSQL,
        "--rename",
        &format!("{}={}", src.name, dst.name),
        "--identity",
        identity_s,
    ]);
    assert_eq!(checksums(&dst.name), checksums(&src.name));
    let out = tmp.path().join("export");
    ok(&[
        "export",
        "--repo",
        repo_s,
        &id,
        "--to",
        out.to_str().unwrap(),
        "--identity",
        identity_s,
    ]);
    assert!(out.join("manifest.json").exists());
    ok(&["prune", "--repo", repo_s, "--keep-last", "1"]);
    let r = amlmigrate(&[
        "snapshots",
        "--repo",
        repo_s,
        "--identity",
        identity_s,
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn a_sampled_verify_reads_a_share_of_the_packs_and_finds_damage_in_them() {
    let src = TestDb::create("sample");
    random_rows(&src.name, 60_000);
    let (_tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap();
    let id = backup(&repo, &src.name);
    let all = packs(&repo);
    assert!(all.len() >= 2, "{all:?}");
    let out = ok(&["verify", "--repo", repo_s, &id, "--sample", "50%", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = &j["sample"];
    assert_eq!(s["packs_used"], all.len() as u64, "{j}");
    assert_eq!(
        s["packs_read"].as_u64().unwrap(),
        (all.len() as u64).div_ceil(2),
        "{j}"
    );
    // Damage in every pack: any sample finds it.
    for p in &all {
        let mut bytes = std::fs::read(p).unwrap();
        let at = bytes.len() / 3;
        bytes[at] ^= 1;
        std::fs::write(p, bytes).unwrap();
    }
    let r = amlmigrate(&["verify", "--repo", repo_s, &id, "--sample", "1%"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        !repo
            .join("snapshots")
            .join(&id)
            .join("verified.json")
            .exists(),
        "a sample counted as a verification"
    );
}

/// `rows` rows of 1 KiB of random base64 (compresses little: several packs).
fn random_rows(db: &str, rows: u64) {
    sql(
        Some(db),
        &format!(
            "CREATE TABLE noise (id BIGINT PRIMARY KEY, v TEXT) ENGINE=InnoDB; \
             INSERT INTO noise SELECT seq, TO_BASE64(RANDOM_BYTES(768)) FROM seq_1_to_{rows}"
        ),
    );
}

#[test]
fn prune_repacks_a_mostly_unused_pack_and_the_kept_snapshot_stays_whole() {
    let src = TestDb::create("repack");
    big_table(&src.name, 30_000);
    let (_tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap();
    backup(&repo, &src.name);
    // Most rows change: the first snapshot's pack keeps only the chunks of the first rows.
    sql(
        Some(&src.name),
        "UPDATE big SET v = CONCAT('changed-', v) WHERE id > 8000",
    );
    let keep = backup(&repo, &src.name);
    let before = packs(&repo);
    let out = ok(&["prune", "--repo", repo_s, "--keep-last", "1", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sweep = &j["prune"]["sweep"];
    assert!(sweep["packs_repacked"].as_u64().unwrap() >= 1, "{j}");
    let after = packs(&repo);
    assert!(
        before.iter().any(|p| !after.contains(p)),
        "the repacked pack is still there"
    );
    ok(&["verify", "--repo", repo_s, &keep]);
    let dst = TestDb::new("repack_dst");
    let r = restore_renamed(&repo, &keep, &src.name, &dst.name);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(checksums(&dst.name), checksums(&src.name));
}

#[test]
fn mlflow_migrates_from_an_encrypted_snapshot_with_the_identity_only() {
    let mlflow = TestDb::create("enc_mlf");
    let artifacts = tempfile::tempdir().unwrap();
    common::upgrade::mlflow_26(&mlflow, artifacts.path());
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let repo_s = repo.to_str().unwrap();
    let (recipient, identity) = age_key(tmp.path(), "key.txt");
    ok(&["repo", "init", "--repo", repo_s, "--encrypt-to", &recipient]);
    let out = ok(&[
        "backup",
        "--init",
        "--repo",
        repo_s,
        "--mysql",
        MYSQL,
        "--databases",
        &mlflow.name,
        "--encrypt-to",
        &recipient,
        "--json",
    ]);
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let pg = common::pg::PgDb::new("enc_mlf_pg");
    let migrate = |extra: &[&str]| {
        amlmigrate(
            &[
                &[
                    "mlflow",
                    "migrate",
                    "--from-snapshot",
                    repo_s,
                    &id,
                    "--to",
                    &pg.url(),
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    // Without the identity the snapshot cannot be read, and nothing is written.
    let r = migrate(&[]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("--identity"), "{r:?}");
    assert_eq!(
        common::pg::psql(
            &pg.name,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
        .trim(),
        "0"
    );
    let r = migrate(&["--identity", identity.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        common::pg::psql(&pg.name, "SELECT count(*) FROM metrics").trim(),
        sql(Some(&mlflow.name), "SELECT COUNT(*) FROM metrics").trim()
    );
}
