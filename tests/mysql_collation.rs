//! A snapshot taken on MySQL 8 names `utf8mb4_0900_ai_ci`, which MariaDB lacks. No MySQL 8
//! server can run here, so the test rewrites a real snapshot the way MySQL 8 would have written
//! it (repacked with the library's own part writer, checksums and all), then restores it.

mod common;

use common::*;
use std::io::Read;

use amlmigrate::archive::{PartWriter, read_part};
use amlmigrate::repo::manifest::Manifest;

#[test]
fn a_mysql8_collation_missing_on_the_target_is_mapped_and_reported() {
    let src = TestDb::create("coll");
    sql(
        Some(&src.name),
        "CREATE TABLE people (name VARCHAR(50) COLLATE utf8mb4_unicode_ci PRIMARY KEY, note TEXT) \
         DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci; \
         INSERT INTO people VALUES ('Zoë', '中文'), ('ann', NULL), ('Émile', 'x')",
    );
    let (_tmp, repo) = temp_repo();
    let id = backup(&repo, &src.name);

    let part_path = part_file(&repo, &id);
    let manifest_path = repo.join("snapshots").join(&id).join("manifest.json");
    let mut manifest: Manifest =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let part = manifest.parts[0].clone();
    let mut entries = Vec::new();
    read_part(std::fs::File::open(&part_path).unwrap(), &part, |e| {
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        entries.push((e.entry().path.clone(), data));
        Ok(())
    })
    .unwrap();
    let mut w = PartWriter::new(Vec::new(), 3, 0).unwrap();
    for (path, data) in &entries {
        let data = if path.ends_with(".sql") || path.ends_with(".json") {
            String::from_utf8(data.clone())
                .unwrap()
                .replace("utf8mb4_unicode_ci", "utf8mb4_0900_ai_ci")
                .into_bytes()
        } else {
            data.clone()
        };
        w.append(path, &data).unwrap();
    }
    let (bytes, info) = w.finish().unwrap();
    std::fs::write(&part_path, bytes).unwrap();
    manifest.parts[0].size = info.size;
    manifest.parts[0].sha256 = info.sha256;
    manifest.parts[0].entries = info.entries;
    let db = &mut manifest.mysql[0];
    db.collations = db
        .collations
        .iter()
        .map(|c| c.replace("utf8mb4_unicode_ci", "utf8mb4_0900_ai_ci"))
        .collect();
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(&manifest_path)
            .unwrap()
            .contains("utf8mb4_0900_ai_ci")
    );
    ok(&["verify", "--repo", repo.to_str().unwrap(), &id, "--quiet"]);

    let dst = TestDb::new("coll_dst");
    let r = restore_renamed(&repo, &id, &src.name, &dst.name);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("collation utf8mb4_0900_ai_ci mapped to utf8mb4_uca1400_ai_ci"),
        "{r:?}"
    );
    let ddl = sql(None, &format!("SHOW CREATE TABLE `{}`.people", dst.name));
    assert!(
        ddl.contains("utf8mb4_uca1400_ai_ci") && !ddl.contains("0900"),
        "{ddl}"
    );
    let rows = |db: &str| {
        sql(
            None,
            &format!("SELECT name, note FROM `{db}`.people ORDER BY BINARY name"),
        )
    };
    assert_eq!(rows(&dst.name), rows(&src.name));
}
