//! Backup → verify → restore of the exactness fixture against the real MariaDB, proven with
//! CHECKSUM TABLE and row counts.

mod common;

use common::gate::{TableGate, wait_until_blocked};
use common::*;
use std::process::Command;

#[test]
fn fixture_round_trips_bit_for_bit_with_checksum_table() {
    let src = TestDb::with_fixture("rt_src");
    let dst = TestDb::new("rt_dst");
    let (_tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap();
    let id = backup(&repo, &src.name);
    assert!(id.len() == 23 && id.contains('T'), "{id}");

    let v = amlmigrate(&["verify", "--repo", repo_s, &id, "--json"]);
    assert_eq!(v.code, 0, "{v:?}");
    let report: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(report["verify"]["tables"], 16);
    assert_eq!(report["verify"]["rows"], 57);

    // Unsigned, so its triggers, routines and definer views run only when trusted explicitly.
    let rename = format!("{}={}", src.name, dst.name);
    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo_s,
        "latest",
        "--mysql",
        common::MYSQL,
        "--rename",
        &rename,
        "--trust-unsigned-code",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let before = checksums(&src.name);
    let after = checksums(&dst.name);
    assert_eq!(before.len(), 16);
    assert_eq!(before, after, "CHECKSUM TABLE differs after restore");

    // Triggers were created after the data: the audit table did not grow and the BEFORE
    // trigger did not rewrite notes.
    assert_eq!(
        sql(Some(&dst.name), "SELECT COUNT(*) FROM audit").trim(),
        "2"
    );
    // Triggers, routines and views work on the restored database.
    sql(Some(&dst.name), "INSERT INTO orders (amount) VALUES (1.00)");
    assert_eq!(
        sql(Some(&dst.name), "SELECT COUNT(*) FROM audit").trim(),
        "3"
    );
    assert_eq!(
        sql(
            Some(&dst.name),
            "SELECT note FROM orders ORDER BY id DESC LIMIT 1"
        )
        .trim(),
        "set by trigger"
    );
    assert_eq!(sql(Some(&dst.name), "SELECT double_it(21)").trim(), "42");
    assert_eq!(
        sql(Some(&dst.name), "SELECT COUNT(*) FROM `a view on a view`").trim(),
        "3"
    );
    // The view was rewritten to the renamed database, not left pointing at the source.
    let view = sql(None, &format!("SHOW CREATE VIEW `{}`.v_orders", dst.name));
    assert!(
        view.contains(&format!("`{}`.", dst.name)) && !view.contains(&format!("`{}`.", src.name))
    );
    // Generated columns were computed again.
    assert_eq!(
        sql(
            Some(&dst.name),
            "SELECT total, label FROM `generated` WHERE id = 1"
        )
        .trim(),
        "29.97\titem-1"
    );
    // The AUTO_INCREMENT row with id 0 kept its id.
    assert_eq!(
        sql(
            Some(&dst.name),
            "SELECT COUNT(*) FROM integers WHERE id = 0"
        )
        .trim(),
        "1"
    );
}

#[test]
fn show_and_snapshots_describe_the_snapshot_and_json_is_parseable() {
    let src = TestDb::with_fixture("show");
    let (_tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap();
    let r = amlmigrate(&[
        "backup",
        "--init",
        "--repo",
        repo_s,
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
        "--tag",
        "reason=pre-upgrade",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let id = j["snapshot"].as_str().unwrap().to_string();
    assert_eq!(j["rows"], 57);

    let list: serde_json::Value =
        serde_json::from_str(&ok(&["snapshots", "--repo", repo_s, "--json"])).unwrap();
    assert_eq!(list["snapshots"][0]["id"], id.as_str());
    assert_eq!(list["snapshots"][0]["tags"]["reason"], "pre-upgrade");

    let manifest: serde_json::Value =
        serde_json::from_str(&ok(&["show", "--repo", repo_s, "latest", "--json"])).unwrap();
    let tables = manifest["mysql"][0]["tables"].as_array().unwrap();
    let no_pk = tables.iter().find(|t| t["name"] == "no_pk").unwrap();
    assert_eq!(no_pk["rows"], 6);
    assert_eq!(
        manifest["sources"][0]["location"],
        "mysql://root@127.0.0.1:3306"
    );

    let text = ok(&["show", "--repo", repo_s, &id[..12]]);
    assert!(
        text.contains("no_pk") && text.contains("pre-upgrade"),
        "{text}"
    );
    // A deduplicated snapshot lists chunks per entry, and its part size is what it added.
    let part = &manifest["parts"][0];
    assert_eq!(part["chunked"], true, "{part}");
    assert!(part["entries"][0]["chunks"].as_array().is_some(), "{part}");
}

#[test]
fn readme_recipe_restores_with_tar_zstd_and_the_mysql_client_alone() {
    let src = TestDb::with_fixture("recipe");
    // A name any user with CREATE ROUTINE can choose, made to end a `-- procedure …` comment
    // line of schema.sql (mysqldump's CVE-2016-5483): the recipe must create nothing else.
    let evil = TestDb::new("recipe_evil");
    let breakout = format!("q\nCREATE DATABASE {};#", evil.name);
    sql(
        Some(&src.name),
        &format!("CREATE PROCEDURE `{breakout}`() SELECT 1"),
    );
    let (tmp, repo) = temp_repo();
    let id = backup(&repo, &src.name);
    let before = checksums(&src.name);
    sql(None, &format!("DROP DATABASE `{}`", src.name));

    // The recipe of docs/snapshot-format.md, step by step: export the snapshot as plain files,
    // check the part with sha256sum against the exported manifest, unpack it and feed it to
    // mysql.
    let export = tmp.path().join("export");
    ok(&[
        "export",
        "--repo",
        repo.to_str().unwrap(),
        &id,
        "--to",
        export.to_str().unwrap(),
    ]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(export.join("manifest.json")).unwrap()).unwrap();
    let part = export.join(manifest["parts"][0]["path"].as_str().unwrap());
    let out = Command::new("sha256sum").arg(&part).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(manifest["parts"][0]["sha256"].as_str().unwrap()),
        "sha256sum disagrees with the exported manifest"
    );
    let work = tmp.path().join("unpacked");
    std::fs::create_dir_all(&work).unwrap();
    let sh = format!(
        "set -e; cd '{}'; tar -I zstd -xf '{}'; \
         mysql -uroot -h127.0.0.1 < mysql/{db}/schema.sql; \
         mysql -uroot -h127.0.0.1 --local-infile=1 < mysql/{db}/load.sql; \
         mysql -uroot -h127.0.0.1 < mysql/{db}/post-data.sql",
        work.display(),
        part.display(),
        db = src.name
    );
    let out = Command::new("bash").arg("-c").arg(&sh).output().unwrap();
    assert!(
        out.status.success(),
        "recipe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(checksums(&src.name), before);
    assert_eq!(
        sql(Some(&src.name), "SELECT COUNT(*) FROM audit").trim(),
        "2"
    );
    let made = sql(
        None,
        &format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{}'",
            evil.name
        ),
    );
    assert_eq!(made.trim(), "0", "a routine's name ran as a statement");
    let routine = sql(
        None,
        &format!(
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{}' AND ROUTINE_NAME LIKE 'q%'",
            src.name
        ),
    );
    assert_eq!(routine.trim(), "1", "the routine itself was not restored");
}

#[test]
fn restore_refuses_a_target_that_holds_rows_and_changes_nothing() {
    let src = TestDb::with_fixture("refuse");
    let (_tmp, repo) = temp_repo();
    backup(&repo, &src.name);
    sql(Some(&src.name), "DELETE FROM no_pk WHERE a = 2");
    let before = checksums(&src.name);
    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        "latest",
        "--mysql",
        MYSQL,
    ]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("not empty") && r.stderr.contains("--replace"),
        "{r:?}"
    );
    assert!(r.stderr.contains("nothing was changed"), "{r:?}");
    assert_eq!(checksums(&src.name), before);
}

#[test]
fn replace_puts_back_exactly_the_snapshot_rows() {
    let src = TestDb::with_fixture("replace");
    let (_tmp, repo) = temp_repo();
    backup(&repo, &src.name);
    let snap = checksums(&src.name);
    sql(
        Some(&src.name),
        "DELETE FROM no_pk WHERE a = 1; INSERT INTO texts (id, u) VALUES (99, 'new'); \
         UPDATE numbers SET db = 42; INSERT INTO empty_table VALUES (1, 'x');",
    );
    let changed = checksums(&src.name);
    assert_ne!(changed, snap);
    let dry = amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        "latest",
        "--mysql",
        MYSQL,
        "--replace",
        "--trust-unsigned-code",
        "--dry-run",
    ]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("nothing was written"), "{dry:?}");
    assert!(
        dry.stdout
            .contains(&format!("rows of `{}`.`no_pk` would be replaced", src.name)),
        "{dry:?}"
    );
    assert_eq!(checksums(&src.name), changed, "a dry run wrote something");
    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        "latest",
        "--mysql",
        MYSQL,
        "--replace",
    ]);
    // The live triggers would fire on the rows, and the unsigned snapshot's are not restored.
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr.contains("--trust-unsigned-code replaces it"),
        "{r:?}"
    );
    assert_eq!(
        checksums(&src.name),
        changed,
        "a refused restore wrote something"
    );
    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        "latest",
        "--mysql",
        MYSQL,
        "--replace",
        "--trust-unsigned-code",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(checksums(&src.name), snap);
}

#[test]
fn restore_into_the_url_database_when_one_database_is_restored() {
    let src = TestDb::with_fixture("urldb");
    let dst = TestDb::new("urldb_dst");
    let (_tmp, repo) = temp_repo();
    backup(&repo, &src.name);
    ok(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        "latest",
        "--mysql",
        &format!("{MYSQL}/{}", dst.name),
        "--quiet",
    ]);
    assert_eq!(checksums(&dst.name), checksums(&src.name));
}

#[test]
fn backup_reads_every_table_from_one_point_in_time() {
    let src = TestDb::create("consistent");
    big_table(&src.name, 300_000);
    sql(
        Some(&src.name),
        "CREATE TABLE zz_late (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO zz_late VALUES (1)",
    );
    let (_tmp, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap().to_string();
    let db = src.name.clone();
    let gate = TableGate::write(&src.name, "big");
    let child = std::process::Command::new(bin())
        .args([
            "backup",
            "--init",
            "--repo",
            &repo_s,
            "--mysql",
            MYSQL,
            "--databases",
            &db,
            "--quiet",
            "--chunk-mib",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the backup waits to read `big`, its snapshot transaction is open: rows written now,
    // into a table read later, must not be in the snapshot.
    wait_until_blocked(&format!("%FROM `{}`.`big`%", src.name));
    sql(Some(&src.name), "INSERT INTO zz_late VALUES (2), (3)");
    gate.open();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let m: serde_json::Value =
        serde_json::from_str(&ok(&["show", "--repo", &repo_s, "latest", "--json"])).unwrap();
    let late = m["mysql"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "zz_late")
        .unwrap()
        .clone();
    assert_eq!(
        late["rows"], 1,
        "a row written during the backup leaked into the snapshot"
    );
    let big = m["mysql"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "big")
        .unwrap()
        .clone();
    assert_eq!(big["rows"], 300_000);
    assert!(
        big["chunks"].as_u64().unwrap() > 10,
        "chunks are bounded: {big}"
    );
}
