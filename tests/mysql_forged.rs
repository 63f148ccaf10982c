//! A snapshot is untrusted input: someone who can write the bucket edits a real snapshot's
//! `schema.json` and recomputes the entry's and the part's sha256, so `verify` calls it sound.
//! Each test proves that restore runs nothing of such a snapshot (dry run included): no database
//! outside the snapshot's own is created, the target is untouched, and the error names the object.

mod common;

use std::path::Path;

use common::{TestDb, amlmigrate, backup, ok, sql};
use serde_json::Value;

/// Rewrites the `schema.json` of database `db` in snapshot `id` through `f`, recomputing every
/// hash in the manifest.
fn forge(repo: &Path, id: &str, db: &str, f: impl FnOnce(&mut Value)) {
    common::forge_part(repo, id, |files| {
        let key = format!("mysql/{db}/schema.json");
        let mut schema: Value = serde_json::from_slice(&files[&key]).unwrap();
        f(&mut schema);
        files.insert(key, serde_json::to_vec(&schema).unwrap());
    });
}

fn exists(db: &str) -> bool {
    !sql(
        None,
        &format!("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"),
    )
    .trim()
    .is_empty()
}

/// The object of `list` (`pre_data`/`post_data`) named `name`.
fn object<'a>(schema: &'a mut Value, list: &str, name: &str) -> &'a mut Value {
    schema[list]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"))
}

/// Backs up the fixture, forges it with `f` (given the name of a database the forgery tries to
/// create), and proves restore and its dry run refuse it naming `says`, creating nothing.
fn refused(f: impl FnOnce(&mut Value, &str), says: &[&str]) {
    let (_dir, repo) = common::temp_repo();
    let src = TestDb::with_fixture("forged");
    let evil = TestDb::new("evil");
    let dst = TestDb::new("forged_dst");
    let id = backup(&repo, &src.name);
    forge(&repo, &id, &src.name, |s| f(s, &evil.name));
    ok(&["verify", "--repo", repo.to_str().unwrap(), &id]);
    for dry in [true, false] {
        let mut args = vec![
            "restore",
            "--repo",
            repo.to_str().unwrap(),
            &id,
            "--mysql",
            common::MYSQL,
        ];
        let rename = format!("{}={}", src.name, dst.name);
        args.extend(["--rename", &rename]);
        if dry {
            args.push("--dry-run");
        }
        let r = amlmigrate(&args);
        assert_eq!(r.code, 4, "dry run {dry}: {r:?}");
        for s in says {
            assert!(r.stderr.contains(s), "stderr lacks {s:?}: {r:?}");
        }
        assert!(r.stderr.contains("nothing was run"), "{r:?}");
        assert!(!exists(&evil.name), "the forged statement ran: {r:?}");
        assert!(!exists(&dst.name), "a refused restore wrote: {r:?}");
    }
}

#[test]
fn a_second_statement_after_a_tables_definition_is_refused_naming_the_table() {
    refused(
        |s, evil| {
            let o = object(s, "pre_data", "orders");
            let sql = format!("{}; CREATE DATABASE `{evil}`", o["sql"].as_str().unwrap());
            o["sql"] = sql.into();
        },
        &["table `", "`.`orders`", "more than one statement"],
    );
}

#[test]
fn a_character_set_carrying_sql_is_refused() {
    refused(
        |s, evil| s["charset"] = format!("utf8mb4; CREATE DATABASE `{evil}`").into(),
        &["default character set", "not one the target server knows"],
    );
}

#[test]
fn a_collation_carrying_sql_is_refused() {
    refused(
        |s, evil| s["collation"] = format!("utf8mb4_bin; CREATE DATABASE `{evil}`").into(),
        &["default collation", "not one the target server knows"],
    );
}

#[test]
fn a_trigger_body_followed_by_another_statement_is_refused() {
    refused(
        |s, evil| {
            let o = object(s, "post_data", "orders_bi");
            let sql = format!("{}; CREATE DATABASE `{evil}`", o["sql"].as_str().unwrap());
            o["sql"] = sql.into();
        },
        &["trigger `", "`.`orders_bi`", "more than one statement"],
    );
}

#[test]
fn an_object_that_creates_something_else_is_refused() {
    refused(
        |s, evil| {
            let o = object(s, "pre_data", "double_it");
            o["sql"] = format!("CREATE DATABASE `{evil}`").into();
        },
        &["function `", "`.`double_it`", "does not create a function"],
    );
}

#[test]
fn a_table_created_in_another_database_is_refused() {
    refused(
        |s, evil| {
            let o = object(s, "pre_data", "audit");
            o["sql"] = format!("CREATE TABLE `{evil}`.`audit` (id INT)").into();
        },
        &["table `", "`.`audit`", "in database `amlt_evil"],
    );
}
