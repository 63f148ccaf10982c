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

/// Edits a snapshot's `schema.json`, given the name of a database the forgery tries to create.
type Forgery = dyn Fn(&mut Value, &str);
/// A forgery and what the refusal must say.
type Case<'a> = (&'a Forgery, &'a [&'a str]);

/// A copy of `repo` (a snapshot made once, forged many ways).
fn copy_repo(repo: &Path) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("repo");
    let st = std::process::Command::new("cp")
        .args(["-a", repo.to_str().unwrap(), to.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    (dir, to)
}

/// For each case, forges a copy of one backup of the fixture and proves restore (dry run and
/// real) refuses it with exit 4 naming what the case says, and that nothing ran: neither the
/// forger's database nor its user exists, and the target was not created.
fn refused_each(cases: &[Case<'_>]) {
    let (_dir, repo) = common::temp_repo();
    let src = TestDb::with_fixture("forged");
    let id = backup(&repo, &src.name);
    for (i, (f, says)) in cases.iter().enumerate() {
        let (_copy_dir, copy) = copy_repo(&repo);
        let evil = TestDb::new("evil");
        let dst = TestDb::new("forged_dst");
        forge(&copy, &id, &src.name, |s| f(s, &evil.name));
        let rename = format!("{}={}", src.name, dst.name);
        for dry in [true, false] {
            let mut args = vec!["restore", "--repo", copy.to_str().unwrap(), &id];
            args.extend(["--mysql", common::MYSQL, "--rename", &rename]);
            if dry {
                args.push("--dry-run");
            }
            let r = amlmigrate(&args);
            assert_eq!(r.code, 4, "case {i}, dry run {dry}: {r:?}");
            for s in *says {
                assert!(r.stderr.contains(s), "case {i}: stderr lacks {s:?}: {r:?}");
            }
            assert!(
                !exists(&evil.name),
                "case {i}: the forged statement ran: {r:?}"
            );
            let user = sql(
                None,
                &format!(
                    "SELECT COUNT(*) FROM mysql.user WHERE User = '{}'",
                    evil.name
                ),
            );
            assert_eq!(user.trim(), "0", "case {i}: the forged GRANT ran: {r:?}");
            assert!(
                !exists(&dst.name),
                "case {i}: a refused restore wrote: {r:?}"
            );
        }
    }
}

fn set_sql(s: &mut Value, list: &str, name: &str, sql: String) {
    object(s, list, name)["sql"] = sql.into();
}

/// Text the old checker read one way and the server another: a versioned comment above the
/// server's version, MariaDB's `/*M!` and `/*+`, `#` and `-- ` comments running past `\r`, `--`
/// before a control character. Each hides a statement behind a quote only one reader saw.
#[test]
fn comments_read_differently_by_checker_and_server_hide_nothing() {
    let hidden = |evil: &str| {
        format!("CREATE DATABASE `{evil}`; GRANT ALL ON *.* TO '{evil}'@'%' WITH GRANT OPTION")
    };
    let wraps: [fn(&str) -> String; 6] = [
        |h| format!("/*!999999 ' */; {h}; -- ' */"),
        |h| format!("/*M!999999 ' */; {h}; -- ' */"),
        |h| format!("/*+ ' */; {h}; -- ' */"),
        |h| format!("#\r'\n; {h}; #'"),
        |h| format!("-- \r'\n; {h}; #'"),
        |h| format!("--\x01'\n; {h}; #'"),
    ];
    let trigger = |w: fn(&str) -> String| {
        move |s: &mut Value, evil: &str| {
            let body = w(&hidden(evil));
            set_sql(
                s,
                "post_data",
                "orders_ai",
                format!(
                    "CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW SET @a = 1 {body}"
                ),
            );
        }
    };
    let table = |w: fn(&str) -> String| {
        move |s: &mut Value, evil: &str| {
            let body = w(&hidden(evil));
            set_sql(
                s,
                "pre_data",
                "audit",
                format!("CREATE TABLE `audit` (`id` int PRIMARY KEY, `what` varchar(100)) {body}"),
            );
        }
    };
    let fs: Vec<Box<Forgery>> = wraps
        .iter()
        .flat_map(|w| [Box::new(trigger(*w)) as Box<Forgery>, Box::new(table(*w))])
        .collect();
    let says: &[&str] = &["more than one statement"];
    let cases: Vec<Case<'_>> = fs.iter().map(|f| (f.as_ref() as &Forgery, says)).collect();
    refused_each(&cases);
}

/// Every form of a table that acts outside the snapshot's database is refused naming its clause.
#[test]
fn tables_that_reach_outside_the_database_are_refused_naming_the_clause() {
    let audit = |tail: &'static str| {
        move |s: &mut Value, _: &str| {
            set_sql(
                s,
                "pre_data",
                "audit",
                format!("CREATE TABLE `audit` (`id` int, `what` varchar(100)) {tail}"),
            )
        }
    };
    let whole = |sql: &'static str| {
        move |s: &mut Value, _: &str| set_sql(s, "pre_data", "audit", sql.to_string())
    };
    let a = audit("(SELECT 1 AS id, Password AS what FROM mysql.user)");
    let b = audit("ENGINE=MRG_MyISAM UNION=(`mysql`.`db`)");
    let c = audit("ENGINE=MyISAM DATA DIRECTORY='/tmp'");
    let d = audit("ENGINE=CONNECT TABLE_TYPE=MYSQL");
    let e = audit("ENGINE=FEDERATED");
    let f = whole("CREATE OR REPLACE TABLE `audit` (`id` int)");
    let g = whole("CREATE TABLE IF NOT EXISTS `audit` (`id` int)");
    let h = audit("AS SELECT * FROM mysql.user");
    let i = whole(
        "CREATE TABLE `audit` (`id` int, FOREIGN KEY (`id`) REFERENCES `mysql`.`user` (`id`))",
    );
    let cases: [Case<'_>; 9] = [
        (
            &a,
            &["table `", "`.`audit`", "expected a table option at ("],
        ),
        (&b, &["`.`audit`", "clause UNION"]),
        (&c, &["`.`audit`", "clause DATA DIRECTORY"]),
        (&d, &["`.`audit`", "clause TABLE_TYPE"]),
        (&e, &["`.`audit`", "clause ENGINE=FEDERATED"]),
        (&f, &["`.`audit`", "clause OR REPLACE"]),
        (&g, &["`.`audit`", "clause IF NOT EXISTS"]),
        (&h, &["`.`audit`", "clause AS"]),
        (&i, &["`.`audit`", "qualified name"]),
    ];
    refused_each(&cases);
}

/// A system schema is neither a database a snapshot may hold nor a target.
#[test]
fn system_schemas_are_refused_as_snapshot_databases_and_targets() {
    let (_dir, repo) = common::temp_repo();
    let src = TestDb::with_fixture("forged");
    let id = backup(&repo, &src.name);
    for target in [
        "mysql",
        "information_schema",
        "performance_schema",
        "sys",
        "MySQL",
    ] {
        let r = common::restore_renamed(&repo, &id, &src.name, target);
        assert_eq!(r.code, 4, "{r:?}");
        assert!(r.stderr.contains("system database"), "{r:?}");
    }
    common::plain_snapshot(&repo, &id);
    let path = repo.join("snapshots").join(&id).join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    m["mysql"][0]["name"] = "mysql".into();
    std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        &id,
        "--mysql",
        common::MYSQL,
        "--dry-run",
    ]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("`mysql` is a system database"), "{r:?}");
}

/// Code that would act with its definer's privileges outside the snapshot is refused whatever
/// vouches for the snapshot: a procedure that grants, a trigger writing into another database,
/// a view exposing `mysql.global_priv`, an event dropping another database's table, dynamic
/// SQL, files.
#[test]
fn code_bodies_that_grant_reach_other_databases_or_touch_files_are_refused() {
    let proc_ = |body: &'static str| {
        move |s: &mut Value, evil: &str| {
            let body = body.replace("EVIL", evil);
            set_sql(
                s,
                "pre_data",
                "count_orders",
                format!(
                    "CREATE DEFINER=`root`@`localhost` PROCEDURE `count_orders`(OUT n INT) BEGIN {body}; END"
                ),
            )
        }
    };
    let a = proc_("GRANT ALL ON *.* TO 'EVIL'@'%' WITH GRANT OPTION");
    let b = proc_("CREATE USER 'EVIL'@'%'");
    let c = proc_("PREPARE s FROM 'CREATE DATABASE EVIL'; EXECUTE s");
    let d = proc_("SELECT 1 INTO OUTFILE '/tmp/EVIL'");
    let e = |s: &mut Value, _: &str| {
        set_sql(
            s,
            "post_data",
            "orders_ai",
            "CREATE TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW INSERT INTO mysql.db (Db) VALUES ('x')".into(),
        )
    };
    let f = |s: &mut Value, _: &str| {
        set_sql(
            s,
            "pre_data",
            "v_orders",
            "CREATE SQL SECURITY INVOKER VIEW `v_orders` AS SELECT User, Priv FROM `mysql`.`global_priv`".into(),
        )
    };
    let g = |s: &mut Value, _: &str| {
        let event = serde_json::json!({
            "kind": "event",
            "name": "e",
            "sql": "CREATE EVENT e ON SCHEDULE EVERY 1 SECOND DO DROP TABLE sys.sys_config",
        });
        s["post_data"].as_array_mut().unwrap().push(event);
    };
    let cases: [Case<'_>; 7] = [
        (&a, &["procedure `", "`.`count_orders`", "clause GRANT"]),
        (&b, &["`.`count_orders`", "clause CREATE USER"]),
        (&c, &["`.`count_orders`", "clause PREPARE"]),
        (&d, &["`.`count_orders`", "clause OUTFILE"]),
        (
            &e,
            &["trigger `", "`.`orders_ai`", "another database, `mysql`"],
        ),
        (&f, &["view `", "`.`v_orders`", "another database, `mysql`"]),
        (&g, &["event `", "`.`e`", "another database, `sys`"]),
    ];
    refused_each(&cases);
}

/// A part whose `schema.json` holds (and declares) more than a schema ever needs is refused as
/// damaged before it is read whole, dry run included.
#[test]
fn an_oversized_schema_is_refused_before_it_is_read_whole() {
    let (_dir, repo) = common::temp_repo();
    let src = TestDb::with_fixture("forged");
    let dst = TestDb::new("forged_dst");
    let id = backup(&repo, &src.name);
    common::forge_part(&repo, &id, |files| {
        let key = format!("mysql/{}/schema.json", src.name);
        // Whitespace is valid JSON: only the size is wrong.
        let mut big = vec![b' '; 65 << 20];
        big.extend_from_slice(&files[&key]);
        files.insert(key, big);
    });
    let rename = format!("{}={}", src.name, dst.name);
    for dry in [true, false] {
        let mut args = vec!["restore", "--repo", repo.to_str().unwrap(), &id];
        args.extend(["--mysql", common::MYSQL, "--rename", &rename]);
        if dry {
            args.push("--dry-run");
        }
        let r = amlmigrate(&args);
        assert_eq!(r.code, 3, "dry run {dry}: {r:?}");
        assert!(
            r.stderr.contains("schema.json") && r.stderr.contains("larger than"),
            "{r:?}"
        );
        assert!(!exists(&dst.name), "{r:?}");
    }
}

/// Rows of a non-transactional table reach it only once the entry they came from was checked:
/// they load into a staging table renamed into place after the check, so a forged entry (the
/// part's size and hash recomputed, the entry's hash in the manifest left as the backup wrote
/// it) leaves the table as it was. Before, a `--replace` restore had emptied the MyISAM table
/// and filled it with the forged rows by the time the check failed.
#[test]
fn forged_rows_of_a_myisam_table_never_reach_it_when_the_entry_check_fails() {
    let (_dir, repo) = common::temp_repo();
    let src = TestDb::create("staged");
    sql(
        Some(&src.name),
        "CREATE TABLE m (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM; \
         INSERT INTO m SELECT seq, CONCAT('snap-', seq) FROM seq_1_to_50",
    );
    let id = backup(&repo, &src.name);
    let dst = TestDb::create("staged_dst");
    sql(
        Some(&dst.name),
        "CREATE TABLE m (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM; \
         INSERT INTO m VALUES (1, 'mine')",
    );
    let before = sql(Some(&dst.name), "SELECT * FROM m ORDER BY id");

    let part_path = common::part_file(&repo, &id);
    let (order, mut files) = common::read_plain_part(&part_path);
    let rows = order
        .iter()
        .find(|p| p.starts_with(&format!("mysql/{}/m/", src.name)) && p.ends_with(".tsv"))
        .unwrap()
        .clone();
    // Same length, so only the hash can tell.
    let forged = String::from_utf8(files[&rows].clone())
        .unwrap()
        .replace("snap-", "FAKE-");
    files.insert(rows.clone(), forged.into_bytes());
    let manifest_path = repo.join("snapshots").join(&id).join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let part = &mut m["parts"][0];
    let written: Value = part["entries"].clone();
    common::write_plain_part(&part_path, &order, &files, part);
    for (new, old) in part["entries"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(written.as_array().unwrap())
    {
        if new["path"] == rows.as_str() {
            new["sha256"] = old["sha256"].clone();
        }
    }
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();

    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        &id,
        "--mysql",
        common::MYSQL,
        "--rename",
        &format!("{}={}", src.name, dst.name),
        "--replace",
    ]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(
        sql(Some(&dst.name), "SELECT * FROM m ORDER BY id"),
        before,
        "the forged rows reached the table: {r:?}"
    );
    assert_eq!(
        common::tables(&dst.name),
        ["m"],
        "a staging table was left: {r:?}"
    );
}
