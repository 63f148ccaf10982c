//! A real-world schema written by someone else round-trips with every object exactly as it
//! was: MySQL's Sakila sample database (views, triggers, routines, GEOMETRY with a SPATIAL
//! key, FULLTEXT, BLOB; `testdata/mysql/sakila`), plus objects created under client character
//! sets other than utf8mb4 (`latin1`, `cp1251`), another database collation, another
//! `sql_mode` and another time zone. Compared before and after: `information_schema`
//! (ROUTINES, VIEWS, TRIGGERS, EVENTS with their creation-context columns), `SHOW CREATE` of
//! every object, and what the routines and views return.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use amlmigrate::mysql::sqlparse::lex::{Mode, emit, lex};
use common::*;

/// Feeds `bytes` to the `mariadb` client in character set `charset`, in database `db`.
fn feed(db: &str, charset: &str, bytes: &[u8]) {
    let mut child = Command::new("mariadb")
        .args([
            "-uroot",
            "-h127.0.0.1",
            &format!("--default-character-set={charset}"),
            db,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "loading into {db}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `q` and returns its rows, read in utf8mb4.
fn query(db: &str, q: &str) -> String {
    let out = Command::new("mariadb")
        .args([
            "-uroot",
            "-h127.0.0.1",
            "-N",
            "-B",
            "--default-character-set=utf8mb4",
            db,
            "-e",
            q,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Sakila's own files, loaded into `db` instead of `sakila`. MariaDB ignores `/*!NNNNN`
/// comments from 50700 to 99999 (MySQL 5.7+ syntax), so Sakila's GEOMETRY column, its SPATIAL
/// key and their values are opened as MariaDB's own (`/*M!50705`); `SRID 0` stays MySQL's.
fn load_sakila(db: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mysql/sakila");
    let named = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .unwrap()
            .replace("DROP SCHEMA IF EXISTS sakila;", "")
            .replace("CREATE SCHEMA sakila;", "")
            .replace("USE sakila;", &format!("USE `{db}`;"))
            .replace("sakila.", &format!("`{db}`."))
            .replace("/*!50705 ", "/*M!50705 ")
    };
    feed(db, "utf8mb4", named("sakila-schema.sql").as_bytes());
    feed(db, "utf8mb4", named("sakila-data.sql").as_bytes());
}

/// `text` in latin1 or cp1251 bytes (the characters these tests use).
fn encoded(text: &str, charset: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match (charset, c as u32) {
            (_, n) if n < 0x80 => n as u8,
            ("latin1", n) if n < 0x100 => n as u8,
            ("cp1251", n @ 0x410..=0x44f) => (n - 0x410 + 0xc0) as u8,
            _ => panic!("{c} has no byte in {charset}"),
        })
        .collect()
}

/// Objects created by a client in latin1 (while the database's collation was latin1) and in
/// cp1251 (under PIPES_AS_CONCAT and time zone +03:00).
fn add_context_objects(db: &str) {
    let latin1 = format!(
        "ALTER DATABASE `{db}` COLLATE latin1_swedish_ci;
CREATE FUNCTION ctx_latin1() RETURNS VARCHAR(80) DETERMINISTIC
  RETURN CONCAT(CHARSET('x'), ' ', LENGTH('é'), ' ', 'café', ' ', COLLATION('x'));
DELIMITER ;;
CREATE PROCEDURE ctx_latin1_proc(OUT r VARCHAR(80))
BEGIN
  DECLARE v VARCHAR(20) DEFAULT 'Ça va';
  SET r = CONCAT(v, ' ', CHARSET(v), ' ', LENGTH(v));
END;;
DELIMITER ;
CREATE TRIGGER ctx_latin1_trg BEFORE INSERT ON category FOR EACH ROW
  SET NEW.name = IF(NEW.name = 'é', CONCAT('è', LENGTH('é')), NEW.name);
ALTER DATABASE `{db}` COLLATE utf8mb4_general_ci;
CREATE VIEW ctx_latin1_view AS SELECT 'crème' AS word, CHARSET('x') AS cs, LENGTH('é') AS len;
"
    );
    feed(db, "latin1", &encoded(&latin1, "latin1"));
    let cp1251 = "SET SESSION sql_mode = 'PIPES_AS_CONCAT,STRICT_ALL_TABLES', time_zone = '+03:00';
CREATE FUNCTION ctx_cp1251() RETURNS VARCHAR(80) DETERMINISTIC
  RETURN CHARSET('x') || ' ' || LENGTH('ж') || ' ' || 'Привет';
CREATE EVENT ctx_cp1251_event ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE
  DO UPDATE category SET name = 'Привет' || LENGTH('ж') WHERE category_id = 0;
";
    feed(db, "cp1251", &encoded(cp1251, "cp1251"));
}

/// A statement as its tokens, written back the one way: the tool leaves out comments and
/// extra whitespace by design, so bodies are compared token for token.
fn tokens(sql: &str, sql_mode: &str) -> String {
    let mode = Mode::of(Some(sql_mode)).unwrap();
    emit(&lex(sql, mode, 101100).unwrap(), mode)
}

/// Everything `information_schema` and `SHOW CREATE` say about the database's objects, with
/// the database's name replaced so that two databases compare.
fn describe(db: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let lit = format!("'{db}'");
    let scrub = |s: &str| s.replace(db, "DB");
    out.insert(
        "schemata".into(),
        query(
            db,
            &format!(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {lit}"
            ),
        ),
    );
    let lists = [
        (
            "routines",
            "SELECT ROUTINE_NAME, ROUTINE_TYPE, DATA_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, DTD_IDENTIFIER, \
             IS_DETERMINISTIC, SQL_DATA_ACCESS, SECURITY_TYPE, SQL_MODE, DEFINER, CHARACTER_SET_CLIENT, \
             COLLATION_CONNECTION, DATABASE_COLLATION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {} ORDER BY 1",
        ),
        (
            "views",
            "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, IS_UPDATABLE, DEFINER, SECURITY_TYPE, \
             CHARACTER_SET_CLIENT, COLLATION_CONNECTION, ALGORITHM FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {} ORDER BY 1",
        ),
        (
            "triggers",
            "SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_ORDER, ACTION_TIMING, SQL_MODE, \
             DEFINER, CHARACTER_SET_CLIENT, COLLATION_CONNECTION, DATABASE_COLLATION \
             FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {} ORDER BY 1",
        ),
        (
            "events",
            "SELECT EVENT_NAME, DEFINER, TIME_ZONE, EVENT_TYPE, INTERVAL_VALUE, INTERVAL_FIELD, SQL_MODE, STARTS, \
             ENDS, STATUS, ON_COMPLETION, CHARACTER_SET_CLIENT, COLLATION_CONNECTION, DATABASE_COLLATION \
             FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {} ORDER BY 1",
        ),
    ];
    for (what, q) in lists {
        out.insert(what.into(), scrub(&query(db, &q.replace("{}", &lit))));
    }
    let names = |q: &str| -> Vec<String> {
        query(db, &q.replace("{}", &lit))
            .lines()
            .map(str::to_string)
            .collect()
    };
    for t in names(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE'",
    ) {
        out.insert(
            format!("table {t}"),
            query(db, &format!("SHOW CREATE TABLE `{t}`")),
        );
    }
    for v in names("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {}") {
        out.insert(
            format!("view {v}"),
            scrub(&query(db, &format!("SHOW CREATE VIEW `{v}`"))),
        );
    }
    // Routines and triggers: name, sql_mode, statement, character set, collation, database
    // collation (and the trigger's creation time, left out). Events: sql_mode and time zone
    // come before the statement.
    let code = [
        (
            "FUNCTION",
            "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {} AND ROUTINE_TYPE = 'FUNCTION'",
            2,
        ),
        (
            "PROCEDURE",
            "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {} AND ROUTINE_TYPE = 'PROCEDURE'",
            2,
        ),
        (
            "TRIGGER",
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {}",
            2,
        ),
        (
            "EVENT",
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {}",
            3,
        ),
    ];
    for (kind, q, stmt) in code {
        for name in names(q) {
            let row = query(db, &format!("SHOW CREATE {kind} `{name}`"));
            let mut cols: Vec<String> = row
                .trim_end_matches('\n')
                .split('\t')
                .map(unescape)
                .collect();
            if kind == "TRIGGER" {
                cols.truncate(6);
            }
            cols[stmt] = tokens(&cols[stmt], &cols[1]);
            out.insert(format!("{kind} {name}"), scrub(&cols.join("\t")));
        }
    }
    out
}

/// A field of `mariadb -B` output as it was.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// What the routines and views return, with fixed arguments.
fn results(db: &str) -> BTreeMap<String, String> {
    let calls = [
        "SELECT get_customer_balance(1, '2005-09-01 00:00:00'), inventory_held_by_customer(367), \
         inventory_in_stock(1), inventory_in_stock(367)",
        "CALL film_in_stock(1, 1, @n); SELECT @n",
        "CALL film_not_in_stock(2, 2, @n); SELECT @n",
        "CALL rewards_report(1, 1.00, @n); SELECT @n",
        "SELECT ctx_latin1(), ctx_cp1251()",
        "CALL ctx_latin1_proc(@r); SELECT @r",
        "SELECT * FROM ctx_latin1_view",
        "SELECT * FROM actor_info ORDER BY actor_id",
        "SELECT * FROM customer_list ORDER BY ID",
        "SELECT * FROM film_list ORDER BY FID, category",
        "SELECT * FROM nicer_but_slower_film_list ORDER BY FID, category",
        "SELECT * FROM staff_list ORDER BY ID",
        "SELECT * FROM sales_by_store ORDER BY store",
        "SELECT * FROM sales_by_film_category ORDER BY category",
        "SELECT film_id, title FROM film_text WHERE MATCH(title, description) AGAINST ('drama') ORDER BY film_id",
        "SELECT address_id, ST_AsText(location) FROM address ORDER BY address_id LIMIT 5",
        "SELECT staff_id, MD5(picture) FROM staff ORDER BY staff_id",
    ];
    calls
        .iter()
        .map(|q| (q.to_string(), query(db, q)))
        .collect()
}

#[test]
fn sakila_round_trips_with_every_objects_creation_context_and_results_equal() {
    let src = TestDb::create("sakila_src");
    let dst = TestDb::new("sakila_dst");
    load_sakila(&src.name);
    add_context_objects(&src.name);
    let before = describe(&src.name);
    let results_before = results(&src.name);
    // The context is what the objects do: a latin1 body counts 'é' as one character.
    assert_eq!(
        query(&src.name, "SELECT ctx_latin1(), ctx_cp1251()"),
        "latin1 1 café latin1_swedish_ci\tcp1251 1 Привет\n"
    );

    let (_tmp, repo) = temp_repo();
    let id = backup(&repo, &src.name);
    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        &id,
        "--mysql",
        MYSQL,
        "--rename",
        &format!("{}={}", src.name, dst.name),
        "--trust-unsigned-code",
    ]);
    assert_eq!(r.code, 0, "{r:?}");

    let after = describe(&dst.name);
    assert_eq!(before.len(), after.len(), "{:?}", after.keys());
    for (k, v) in &before {
        assert_eq!(Some(v), after.get(k), "{k} differs after restore");
    }
    assert_eq!(checksums(&src.name), checksums(&dst.name));
    assert_eq!(results_before, results(&dst.name));
    // Counted: 16 tables, 7 + 1 views, 6 + 2 routines (and 2 procedures of ours), 6 + 1
    // triggers, 1 event.
    assert_eq!(
        before.keys().filter(|k| k.starts_with("table ")).count(),
        16
    );
    assert_eq!(before.keys().filter(|k| k.starts_with("view ")).count(), 8);
    assert_eq!(
        before.keys().filter(|k| k.starts_with("TRIGGER ")).count(),
        7
    );
    assert_eq!(before.keys().filter(|k| k.starts_with("EVENT ")).count(), 1);
}

#[test]
fn the_exported_sql_files_restore_every_object_in_its_creation_context() {
    let src = TestDb::create("sakila_files");
    load_sakila(&src.name);
    add_context_objects(&src.name);
    let before = describe(&src.name);
    let results_before = results(&src.name);
    let (tmp, repo) = temp_repo();
    let id = backup(&repo, &src.name);
    sql(None, &format!("DROP DATABASE `{}`", src.name));

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
    let work = tmp.path().join("unpacked");
    std::fs::create_dir_all(&work).unwrap();
    let sh = format!(
        "set -e; cd '{}'; tar -I zstd -xf '{}'; \
         mariadb -uroot -h127.0.0.1 < mysql/{db}/schema.sql; \
         mariadb -uroot -h127.0.0.1 --local-infile=1 < mysql/{db}/load.sql; \
         mariadb -uroot -h127.0.0.1 < mysql/{db}/post-data.sql",
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
    let after = describe(&src.name);
    for (k, v) in &before {
        assert_eq!(Some(v), after.get(k), "{k} differs after the recipe");
    }
    assert_eq!(before.len(), after.len());
    assert_eq!(results_before, results(&src.name));
}
