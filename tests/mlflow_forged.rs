//! `mlflow migrate --from-snapshot` from a forged snapshot (every hash recomputed, so `verify`
//! calls it sound): a row of the wrong shape is refused naming the table, the row and the
//! columns, without a panic, and a text over its target column's length is refused naming the
//! limit; PostgreSQL is rolled back and no artifact is unpacked; an entry
//! with a row longer than any MLflow row is refused as damage without reading it whole.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::mlflow::small_mlflow_26_db;
use common::pg::{PgDb, psql};
use common::*;

/// Rewrites the MySQL part of snapshot `id` (the one of database `db`) through `f`, as someone
/// who can write the bucket can: every entry's and the part's size and sha256 recomputed.
fn forge_mysql_part(repo: &Path, id: &str, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>)) {
    plain_snapshot(repo, id);
    let dir = repo.join("snapshots").join(id);
    let manifest_path = dir.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let part = m["parts"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["kind"] != "mlflow-artifacts" && p["name"] != "mlflow-artifacts")
        .unwrap();
    let file = dir.join(part["path"].as_str().unwrap());
    let (order, mut files) = read_plain_part(&file);
    f(&mut files);
    write_plain_part(&file, &order, &files, part);
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// The TSV entry of `table` (the first one).
fn tsv_of(files: &BTreeMap<String, Vec<u8>>, table: &str) -> String {
    files
        .keys()
        .find(|k| k.contains(&format!("/{table}/")) && k.ends_with(".tsv"))
        .unwrap_or_else(|| panic!("no TSV of {table} in {:?}", files.keys()))
        .clone()
}

/// Replaces the last row of `table`'s TSV with what `f` makes of it (the row count stays what
/// the manifest says, so `verify` still passes).
fn replace_last_row(
    files: &mut BTreeMap<String, Vec<u8>>,
    table: &str,
    f: impl FnOnce(&str) -> Vec<u8>,
) {
    let key = tsv_of(files, table);
    let text = String::from_utf8(files[&key].clone()).unwrap();
    let body = text.strip_suffix('\n').unwrap();
    let (head, last) = body.rsplit_once('\n').unwrap_or(("", body));
    let mut out = if head.is_empty() {
        Vec::new()
    } else {
        format!("{head}\n").into_bytes()
    };
    out.extend(f(last));
    out.push(b'\n');
    files.insert(key, out);
}

struct Snap {
    tmp: tempfile::TempDir,
    repo: std::path::PathBuf,
    id: String,
    _db: TestDb,
}

/// A snapshot of a small MLflow 2.6 database with its artifact folder, then `f` forged in.
fn forged(tag: &str, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>)) -> Snap {
    let db = small_mlflow_26_db(tag);
    let tmp = tempfile::tempdir().unwrap();
    let artifacts = tmp.path().join("artifacts");
    std::fs::create_dir_all(artifacts.join("0/run/artifacts")).unwrap();
    std::fs::write(artifacts.join("0/run/artifacts/model.txt"), b"weights").unwrap();
    let repo = tmp.path().join("repo");
    let id = ok(&[
        "backup",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        MYSQL,
        "--databases",
        &db.name,
        "--mlflow-artifacts",
        artifacts.to_str().unwrap(),
        "--quiet",
        "--init",
    ]);
    let id = id.trim().to_string();
    forge_mysql_part(&repo, &id, f);
    // The manifest's table checksum too: a forger computes it as verify does (here verify says
    // it), and writes it in.
    let r = amlmigrate(&["verify", "--repo", repo.to_str().unwrap(), &id, "--quiet"]);
    if let Some((_, rest)) = r.stderr.split_once("table checksum is ") {
        let (got, rest) = rest.split_once(", the manifest says ").unwrap();
        let said = rest.split_whitespace().next().unwrap();
        let path = repo.join("snapshots").join(&id).join("manifest.json");
        let m = std::fs::read_to_string(&path).unwrap().replace(said, got);
        std::fs::write(&path, m).unwrap();
    }
    ok(&["verify", "--repo", repo.to_str().unwrap(), &id, "--quiet"]);
    Snap {
        tmp,
        repo,
        id,
        _db: db,
    }
}

/// `mlflow migrate --from-snapshot` into a new PostgreSQL database, unpacking artifacts.
fn migrate(s: &Snap, target: &PgDb) -> (Run, std::path::PathBuf) {
    let unpacked = s.tmp.path().join("unpacked");
    let r = amlmigrate(&[
        "mlflow",
        "migrate",
        "--from-snapshot",
        s.repo.to_str().unwrap(),
        &s.id,
        "--to",
        &target.url(),
        "--artifacts-to",
        unpacked.to_str().unwrap(),
    ]);
    (r, unpacked)
}

fn nothing_written(target: &PgDb, unpacked: &Path, r: &Run) {
    assert!(!r.stderr.contains("panicked"), "{r:?}");
    assert_eq!(
        psql(
            &target.name,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        .trim(),
        "0",
        "the refused migration left tables: {r:?}"
    );
    assert!(
        !unpacked.exists() || std::fs::read_dir(unpacked).unwrap().next().is_none(),
        "artifacts were unpacked for a refused migration: {r:?}"
    );
}

#[test]
fn a_row_with_fewer_fields_than_its_table_has_columns_is_refused_naming_table_and_row() {
    let s = forged("mlf_short", |files| {
        replace_last_row(files, "metrics", |_| b"loss\t1.5".to_vec());
    });
    let target = PgDb::new("mlf_short");
    let (r, unpacked) = migrate(&s, &target);
    assert_eq!(r.code, 4, "{r:?}");
    for want in ["metrics row 5", "has 2 field(s)", "column(s) (", "key Text"] {
        assert!(r.stderr.contains(want), "{want:?} not in {r:?}");
    }
    nothing_written(&target, &unpacked, &r);
}

#[test]
fn a_field_that_is_not_its_columns_type_is_refused() {
    let s = forged("mlf_type", |files| {
        replace_last_row(files, "metrics", |last| {
            let mut fields: Vec<&str> = last.split('\t').collect();
            // The step column (bigint).
            let step = fields.len() - 2;
            fields[step] = "1; DROP TABLE runs";
            fields.join("\t").into_bytes()
        });
    });
    let target = PgDb::new("mlf_type");
    let (r, unpacked) = migrate(&s, &target);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("metrics row 5 column"), "{r:?}");
    assert!(r.stderr.contains("not a Int8 value"), "{r:?}");
    nothing_written(&target, &unpacked, &r);
}

#[test]
fn a_row_longer_than_any_mlflow_row_is_refused_as_damage() {
    let s = forged("mlf_long", |files| {
        // An 80 MiB row: zstd makes it a few KiB of the forged part.
        replace_last_row(files, "metrics", |_| vec![b'a'; 80 << 20]);
    });
    let target = PgDb::new("mlf_long");
    let (r, unpacked) = migrate(&s, &target);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("a row longer than"), "{r:?}");
    nothing_written(&target, &unpacked, &r);
}

#[test]
fn a_text_longer_than_its_target_column_is_refused_naming_table_row_column_and_limit() {
    // MLflow 3.1.1's metrics.key is character varying(250); the tool reads that limit from
    // the target's schema, and refuses before PostgreSQL's generic "value too long".
    let s = forged("mlf_len", |files| {
        replace_last_row(files, "metrics", |last| {
            let fields: Vec<String> = last
                .split('\t')
                .map(|f| {
                    if f == "loss" {
                        "é".repeat(251)
                    } else {
                        f.to_string()
                    }
                })
                .collect();
            fields.join("\t").into_bytes()
        });
    });
    let target = PgDb::new("mlf_len");
    let (r, unpacked) = migrate(&s, &target);
    assert_eq!(r.code, 4, "{r:?}");
    for want in ["metrics row 5 column key", "251 characters", "limit of 250"] {
        assert!(r.stderr.contains(want), "{want:?} not in {r:?}");
    }
    assert!(!r.stderr.contains("too long for type"), "{r:?}");
    nothing_written(&target, &unpacked, &r);
}
