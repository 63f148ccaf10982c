//! The checker against the real server: for hostile object texts (a corpus of every class
//! found, and generated ones mixing comments of every kind, quotes, backslashes and control
//! characters under several sql_modes), whatever restore accepts creates, on the real MariaDB,
//! exactly the one object it claimed and nothing else; the rest is refused before anything runs.

mod common;

use std::collections::BTreeSet;

use amlmigrate::mysql::catalog::{ObjectKind, SchemaObject};
use amlmigrate::mysql::restore::statement_for;
use amlmigrate::mysql::sqlparse::Scope;
use amlmigrate::mysql::sqlparse::lex::version_id;
use common::TestDb;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use rand::{Rng, SeedableRng};

const MODES: &[&str] = &[
    "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION",
    "NO_BACKSLASH_ESCAPES",
    "ANSI_QUOTES",
    "ANSI_QUOTES,NO_BACKSLASH_ESCAPES,PIPES_AS_CONCAT",
];

/// Objects of one kind: a template with a hole for the noise.
const TEMPLATES: &[(ObjectKind, &str, &str)] = &[
    (
        ObjectKind::Table,
        "dt",
        "CREATE TABLE dt (a int) COMMENT 'c' {}",
    ),
    (
        ObjectKind::Table,
        "dt",
        "CREATE TABLE dt (a int DEFAULT 1 {})",
    ),
    (
        ObjectKind::View,
        "dv",
        "CREATE SQL SECURITY INVOKER VIEW dv AS SELECT 1 AS a {}",
    ),
    (
        ObjectKind::Trigger,
        "dtr",
        "CREATE TRIGGER dtr BEFORE INSERT ON t FOR EACH ROW SET @a = 1 {}",
    ),
    (
        ObjectKind::Procedure,
        "dp",
        "CREATE PROCEDURE dp() BEGIN SELECT 1 {}; END",
    ),
    (
        ObjectKind::Function,
        "df",
        "CREATE FUNCTION df() RETURNS int RETURN 1 {}",
    ),
    (
        ObjectKind::Event,
        "de",
        "CREATE EVENT de ON SCHEDULE EVERY 1 DAY DISABLE DO SET @a = 1 {}",
    ),
];

/// What the server holds that a forged statement could change: the test database's objects,
/// and every database, user and grant outside other tests' own (`aml…`, `kfp…`).
async fn state(conn: &mut Conn, db: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut own = BTreeSet::new();
    for (q, kind) in [
        (
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            "table",
        ),
        (
            "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?",
            "routine",
        ),
        (
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
            "trigger",
        ),
        (
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?",
            "event",
        ),
    ] {
        let names: Vec<String> = conn.exec(q, (db,)).await.unwrap();
        own.extend(names.into_iter().map(|n| format!("{kind} {n}")));
    }
    let mut global = BTreeSet::new();
    for q in [
        "SELECT CONCAT('db ', SCHEMA_NAME) FROM information_schema.SCHEMATA",
        "SELECT CONCAT('user ', User, '@', Host) FROM mysql.global_priv",
        "SELECT CONCAT('grant ', Db, ' ', User) FROM mysql.db",
        "SELECT CONCAT('table grant ', Db, '.', Table_name, ' ', User) FROM mysql.tables_priv",
        "SELECT CONCAT('routine grant ', Db, '.', Routine_name, ' ', User) FROM mysql.procs_priv",
        "SELECT CONCAT('proc ', db, '.', name) FROM mysql.proc",
        "SELECT CONCAT('event ', db, '.', name) FROM mysql.event",
    ] {
        let rows: Vec<String> = conn.query(q).await.unwrap();
        global.extend(rows.into_iter().filter(|r| {
            !r.split([' ', '.', '@'])
                .any(|p| p.starts_with("aml") || p.starts_with("kfp"))
        }));
    }
    (own, global)
}

struct World {
    conn: Conn,
    db: String,
    server: u32,
    databases: BTreeSet<String>,
    tables: BTreeSet<String>,
    accepted: usize,
    refused: usize,
}

impl World {
    /// Checks one text: refused, or the statement restore writes creates exactly the object.
    async fn try_one(&mut self, kind: ObjectKind, name: &str, sql: &str, mode: &str) {
        let mut o = SchemaObject::plain(kind, name.into(), sql.into());
        o.sql_mode = (kind != ObjectKind::Table).then(|| mode.to_string());
        let scope = Scope {
            source: &self.db,
            tables: &self.tables,
            databases: &self.databases,
            server: self.server,
        };
        let Ok(out) = statement_for(&o, &scope, &self.db, &|_| None) else {
            self.refused += 1;
            return;
        };
        self.accepted += 1;
        let before = state(&mut self.conn, &self.db).await;
        let set = format!(
            "SET SESSION sql_mode = '{}'",
            o.sql_mode.as_deref().unwrap_or(MODES[0])
        );
        self.conn.query_drop(set).await.unwrap();
        // As restore runs it: prepared, or as text where the server cannot prepare it.
        let ran = match self.conn.exec_drop(out.as_str(), ()).await {
            Err(mysql_async::Error::Server(e)) if e.code == 1295 => {
                self.conn.query_drop(out.as_str()).await
            }
            other => other,
        };
        self.conn
            .query_drop(format!("SET SESSION sql_mode = '{}'", MODES[0]))
            .await
            .unwrap();
        let after = state(&mut self.conn, &self.db).await;
        assert_eq!(before.1, after.1, "{sql:?} → {out:?} changed the server");
        let added: Vec<&String> = after.0.difference(&before.0).collect();
        assert!(
            before.0.is_subset(&after.0),
            "{sql:?} → {out:?} dropped something"
        );
        if ran.is_ok() {
            let kind_word = match kind {
                ObjectKind::Table | ObjectKind::View => "table",
                ObjectKind::Function | ObjectKind::Procedure => "routine",
                ObjectKind::Trigger => "trigger",
                ObjectKind::Event => "event",
            };
            assert_eq!(added, [&format!("{kind_word} {name}")], "{sql:?} → {out:?}");
            let drop = format!("DROP {} {name}", kind.keyword());
            self.conn.query_drop(drop).await.unwrap();
        } else {
            assert!(
                added.is_empty(),
                "{sql:?} → {out:?} failed but left {added:?}"
            );
        }
    }
}

fn noise(rng: &mut impl Rng, marker: &str) -> String {
    let payloads = [
        format!("; CREATE DATABASE {marker}"),
        format!("; CREATE USER '{marker}'@'%'"),
        format!("; GRANT ALL ON *.* TO '{marker}'@'%' WITH GRANT OPTION"),
    ];
    const PIECES: &[&str] = &[
        "/*",
        "*/",
        "/*!",
        "/*!50100 ",
        "/*!999999 ",
        "/*M!",
        "/*M!100100 ",
        "/*+ ",
        "#",
        "--",
        "-- ",
        "\n",
        "\r",
        "\x01",
        "\x0b",
        "\t",
        " ",
        "'",
        "\"",
        "`",
        "\\",
        "\\'",
        "''",
        "a",
        "1",
        ",",
        "(",
        ")",
        "@",
        "x'",
        "N'",
        ";",
    ];
    let n = rng.random_range(1..10);
    (0..n)
        .map(|_| {
            if rng.random_range(0..4) == 0 {
                payloads[rng.random_range(0..payloads.len())].clone()
            } else {
                PIECES[rng.random_range(0..PIECES.len())].to_string()
            }
        })
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn whatever_restore_accepts_creates_exactly_the_object_it_claims() {
    let db = TestDb::create("differential");
    let marker = format!("zzevil_{}", std::process::id());
    let mut conn = Conn::new(Opts::from_url(&format!("{}/{}", common::MYSQL, db.name)).unwrap())
        .await
        .unwrap();
    conn.query_drop("SET NAMES utf8mb4").await.unwrap();
    conn.query_drop("CREATE TABLE t (a int)").await.unwrap();
    let version: String = conn.query_first("SELECT VERSION()").await.unwrap().unwrap();
    let mut databases: BTreeSet<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        .await
        .unwrap()
        .into_iter()
        .collect();
    databases.extend(["mysql", "sys"].map(String::from));
    let mut w = World {
        conn,
        db: db.name.clone(),
        server: version_id(&version),
        databases,
        tables: BTreeSet::from(["t".to_string()]),
        accepted: 0,
        refused: 0,
    };

    // The corpus: each class of text the old checker and the server read differently.
    let hide = |h: &str| {
        [
            format!("/*!999999 ' */; {h}; -- ' */"),
            format!("/*M!999999 ' */; {h}; -- ' */"),
            format!("/*+ ' */; {h}; -- ' */"),
            format!("#\r'\n; {h}; #'"),
            format!("-- \r'\n; {h}; #'"),
            format!("--\x01'\n; {h}; #'"),
            format!("'\\'; {h}; -- '"),
            format!("\"; {h}; -- \""),
            "/*!50100 , b int */ /*!999999 , c int */".to_string(),
        ]
    };
    for (kind, name, template) in TEMPLATES {
        for mode in MODES {
            for h in hide(&format!("CREATE DATABASE {marker}")) {
                let sql = template.replace("{}", &h);
                w.try_one(*kind, name, &sql, mode).await;
            }
        }
    }
    let corpus = w.accepted + w.refused;

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x20);
    for _ in 0..1500 {
        let (kind, name, template) = TEMPLATES[rng.random_range(0..TEMPLATES.len())];
        let mode = MODES[rng.random_range(0..MODES.len())];
        let sql = template.replace("{}", &noise(&mut rng, &marker));
        w.try_one(kind, name, &sql, mode).await;
    }
    eprintln!(
        "{corpus} corpus texts and 1500 generated ones: {} accepted (each created exactly its object), {} refused",
        w.accepted, w.refused
    );
    assert!(w.accepted > 100, "too few accepted texts to say anything");
    let evil: Option<String> = w
        .conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (&marker,),
        )
        .await
        .unwrap();
    assert_eq!(evil, None);
    let _ = w.conn.disconnect().await;
}
