//! The tokenizer reads as the server does; tables parse into the forms `SHOW CREATE TABLE`
//! writes and every other form is refused naming its clause; what is written reads back as
//! the same tokens.

use super::lex::{Mode, Tok, emit, lex, version_id};
use super::table::CreateTable;
use rand::{Rng, SeedableRng};

const SERVER: u32 = 110402;

fn toks(sql: &str) -> Vec<Tok> {
    toks_in(sql, Mode::default())
}

fn toks_in(sql: &str, mode: Mode) -> Vec<Tok> {
    lex(sql, mode, SERVER)
        .unwrap_or_else(|e| panic!("{sql:?}: {e}"))
        .into_iter()
        .map(|t| t.tok)
        .collect()
}

fn w(s: &str) -> Tok {
    Tok::Word(s.into())
}

#[test]
fn versioned_comments_hold_code_only_up_to_the_servers_version() {
    assert_eq!(toks("a /*!999999 GRANT */ b"), [w("a"), w("b")]);
    assert_eq!(toks("a /*!50100 c */ b"), [w("a"), w("c"), w("b")]);
    assert_eq!(toks("a /*!c*/ b"), [w("a"), w("c"), w("b")]);
    assert_eq!(toks("a /*M!100100 c*/ b"), [w("a"), w("c"), w("b")]);
    assert_eq!(toks("a /*M!110500 c*/ b"), [w("a"), w("b")]);
    // Five digits are a version; the sixth counts only when present.
    assert_eq!(toks("a /*!11040 c*/"), [w("a"), w("c")]);
    assert_eq!(toks("a /*+ GRANT */ b"), [w("a"), w("b")]);
    assert_eq!(toks("a /* x */ b"), [w("a"), w("b")]);
    assert!(lex("/*! /*! a */ */", Mode::default(), SERVER).is_err());
    assert!(lex("/* /* a */", Mode::default(), SERVER).is_err());
    assert!(lex("a /*! b", Mode::default(), SERVER).is_err());
    assert_eq!(version_id("11.4.2-MariaDB-ubu2404"), 110402);
    assert_eq!(version_id("8.0.36"), 80036);
}

#[test]
fn line_comments_end_at_newline_only_and_dash_dash_needs_space_or_control() {
    assert_eq!(toks("a # x\r GRANT\nb"), [w("a"), w("b")]);
    assert_eq!(toks("a -- x\r GRANT\nb"), [w("a"), w("b")]);
    assert_eq!(toks("a --\x01 GRANT\nb"), [w("a"), w("b")]);
    assert_eq!(toks("a --\x0b GRANT\nb"), [w("a"), w("b")]);
    assert_eq!(toks("a --"), [w("a")]);
    assert_eq!(toks("a --1"), [w("a"), Tok::Op("-"), Tok::Op("-"), w("1")]);
    assert!(lex("a \x01 b", Mode::default(), SERVER).is_err());
}

#[test]
fn strings_follow_the_sql_mode() {
    let nbe = Mode {
        no_backslash_escapes: true,
        ansi_quotes: false,
    };
    assert_eq!(toks(r"'a\'b' c"), [Tok::Str("a'b".into()), w("c")]);
    assert_eq!(
        toks_in(r"'a\' b 'c'", nbe),
        [Tok::Str("a\\".into()), w("b"), Tok::Str("c".into())]
    );
    let ansi = Mode {
        no_backslash_escapes: false,
        ansi_quotes: true,
    };
    assert_eq!(toks_in(r#""a""b""#, ansi), [Tok::Ident("a\"b".into())]);
    assert_eq!(toks(r#""a""b""#), [Tok::Str("a\"b".into())]);
    assert_eq!(toks(r"'\%\_\n'"), [Tok::Str("\\%\\_\n".into())]);
    assert_eq!(
        toks("X'4f' b'01' N'x'"),
        [
            Tok::Prefixed('X', "4f".into()),
            Tok::Prefixed('B', "01".into()),
            Tok::Prefixed('N', "x".into())
        ]
    );
    assert_eq!(
        toks("1.5e3 .5 0x1F 1abc"),
        [
            Tok::Number("1.5e3".into()),
            Tok::Number(".5".into()),
            w("0x1F"),
            w("1abc")
        ]
    );
}

#[test]
fn emitted_text_has_no_comments_and_quotes_everything_itself() {
    let sql = "CREATE /*!50100 x */ `a``b` 'it''s' \"q\" -- c\n @v @@global.x `u`@`h` a<=b - -1";
    let t = lex(sql, Mode::default(), SERVER).unwrap();
    let out = emit(&t, Mode::default());
    assert_eq!(
        out,
        "CREATE x `a``b` 'it''s' 'q' @v @@global.x `u`@`h` a<=b - -1"
    );
}

/// Random text from the pieces a forger mixes: comments of every kind, quotes, backslashes,
/// control characters. Whatever the tokenizer accepts, the tool's text for it reads back as the
/// same tokens in every mode, and never holds a comment opener.
#[test]
fn what_is_written_reads_back_as_what_was_checked() {
    const PIECES: &[&str] = &[
        "a",
        "SELECT",
        "`",
        "'",
        "\"",
        "\\",
        "/*",
        "*/",
        "/*!",
        "/*!50100",
        "/*!999999",
        "/*M!",
        "/*+",
        "#",
        "--",
        "-- ",
        "\n",
        "\r",
        "\x01",
        "\x0b",
        "\t",
        " ",
        ";",
        "(",
        ")",
        ".",
        "@",
        "@@",
        "=",
        "<",
        "-",
        "1",
        "1.5",
        "x'",
        "N'",
        "é",
        "``",
        "''",
        "*",
        "/",
        ",",
    ];
    let modes = [
        Mode::default(),
        Mode {
            no_backslash_escapes: true,
            ansi_quotes: false,
        },
        Mode {
            no_backslash_escapes: false,
            ansi_quotes: true,
        },
        Mode {
            no_backslash_escapes: true,
            ansi_quotes: true,
        },
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let n = rng.random_range(1..14);
        let sql: String = (0..n)
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect();
        let mode = modes[rng.random_range(0..modes.len())];
        let Ok(first) = lex(&sql, mode, SERVER) else {
            continue;
        };
        accepted += 1;
        let out = emit(&first, mode);
        let again = lex(&out, mode, SERVER).unwrap_or_else(|e| panic!("{sql:?} → {out:?}: {e}"));
        let a: Vec<&Tok> = first.iter().map(|t| &t.tok).collect();
        let b: Vec<&Tok> = again.iter().map(|t| &t.tok).collect();
        assert_eq!(a, b, "{sql:?} → {out:?}");
    }
    assert!(accepted > 2_000, "only {accepted} inputs were accepted");
}

fn table(sql: &str) -> Result<CreateTable, String> {
    let t = lex(sql, Mode::default(), SERVER)?;
    CreateTable::parse(&t, "t", "db")
}

#[test]
fn what_show_create_table_writes_parses_and_is_written_back() {
    let sql = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `g` geometry NOT NULL,\n  `b` blob DEFAULT NULL,\n  `n` varchar(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci DEFAULT 'a\\'b' COMMENT 'c',\n  `v` int(11) GENERATED ALWAYS AS (`id` + 1) VIRTUAL,\n  `p` int(11) DEFAULT -1,\n  `d` decimal(5,2) DEFAULT 1.50,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`n`),\n  KEY `k` (`p`) USING BTREE,\n  SPATIAL KEY `s` (`g`),\n  FULLTEXT KEY `f` (`n`),\n  CONSTRAINT `fk` FOREIGN KEY (`p`) REFERENCES `parent` (`id`) ON DELETE CASCADE,\n  CONSTRAINT `c` CHECK (`p` > 0 and `n` like 'x%')\n) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='t;' /*!50100 PARTITION BY RANGE (`id`)\n(PARTITION `p0` VALUES LESS THAN (10) ENGINE = InnoDB,\n PARTITION `p1` VALUES LESS THAN MAXVALUE ENGINE = InnoDB) */";
    let t = table(sql).unwrap();
    assert_eq!(t.definitions.len(), 14);
    let out = t.sql("new");
    assert!(
        out.starts_with("CREATE TABLE `new`.`t` (\n  `id` int(11) NOT NULL"),
        "{out}"
    );
    assert!(out.contains("DEFAULT 'a''b' COMMENT 'c'"), "{out}");
    assert!(out.contains("DEFAULT -1"), "{out}");
    assert!(out.contains(") ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='t;'\nPARTITION BY RANGE"), "{out}");
    assert!(!out.contains("/*"), "{out}");
    // Written again, it parses to the same statement.
    let again = lex(&out, Mode::default(), SERVER).unwrap();
    assert_eq!(
        CreateTable::parse(&again, "t", "new").unwrap().sql("new"),
        out
    );
}

#[test]
fn every_form_that_acts_outside_the_table_is_refused_naming_its_clause() {
    let cases = [
        ("CREATE OR REPLACE TABLE t (a int)", "OR REPLACE"),
        ("CREATE TABLE IF NOT EXISTS t (a int)", "IF NOT EXISTS"),
        (
            "CREATE TEMPORARY TABLE t (a int)",
            "does not create a table",
        ),
        (
            "CREATE TABLE t (a int) SELECT * FROM mysql.user",
            "clause SELECT",
        ),
        ("CREATE TABLE t (a int) AS SELECT 1", "clause AS"),
        ("CREATE TABLE t (a int) IGNORE SELECT 1", "clause IGNORE"),
        ("CREATE TABLE t (a int) REPLACE SELECT 1", "clause REPLACE"),
        (
            "CREATE TABLE t (a int) (SELECT * FROM mysql.global_priv)",
            "expected a table option at (",
        ),
        ("CREATE TABLE t ((SELECT 1))", "clause ("),
        ("CREATE TABLE t (SELECT 1 AS a)", "clause SELECT"),
        ("CREATE TABLE t SELECT 1", "clause SELECT"),
        ("CREATE TABLE t LIKE mysql.user", "clause LIKE"),
        ("CREATE TABLE t (LIKE mysql.user)", "clause LIKE"),
        (
            "CREATE TABLE t (a int) WITH x AS (SELECT 1) SELECT * FROM x",
            "clause WITH",
        ),
        ("CREATE TABLE t (a int) TABLE mysql.user", "clause TABLE"),
        ("CREATE TABLE t (a int) VALUES (1)", "clause VALUES"),
        (
            "CREATE TABLE t (a int) DATA DIRECTORY = '/tmp'",
            "DATA DIRECTORY",
        ),
        (
            "CREATE TABLE t (a int) INDEX DIRECTORY = '/tmp'",
            "INDEX DIRECTORY",
        ),
        (
            "CREATE TABLE t (a int) ENGINE=MRG_MyISAM UNION=(other.t)",
            "clause UNION",
        ),
        (
            "CREATE TABLE t (a int) ENGINE=MRG_MyISAM",
            "ENGINE=MRG_MyISAM",
        ),
        (
            "CREATE TABLE t (a int) UNION=(other.t) ENGINE=MyISAM",
            "clause UNION",
        ),
        ("CREATE TABLE t (a int) ENGINE=CONNECT", "ENGINE=CONNECT"),
        (
            "CREATE TABLE t (a int) ENGINE=FEDERATED",
            "ENGINE=FEDERATED",
        ),
        (
            "CREATE TABLE t (a int) CONNECTION='mysql://x'",
            "clause CONNECTION",
        ),
        ("CREATE TABLE t (a int) ENGINE=SPIDER", "ENGINE=SPIDER"),
        (
            "CREATE TABLE t (a int, FOREIGN KEY (a) REFERENCES other.p (id))",
            "qualified name",
        ),
        (
            "CREATE TABLE t (a int DEFAULT (LOAD_FILE('/etc/passwd')))",
            "LOAD_FILE",
        ),
        ("CREATE TABLE t (a int DEFAULT (@x))", "variable"),
        (
            "CREATE TABLE t (a int) PARTITION BY HASH (a) (PARTITION p0 DATA DIRECTORY = '/tmp')",
            "DIRECTORY",
        ),
        (
            "CREATE TABLE t (a int) PARTITION BY HASH (a) (PARTITION p0 ENGINE = SPIDER)",
            "ENGINE=SPIDER",
        ),
        (
            "CREATE TABLE t (a int) COMMENT 'x'; CREATE DATABASE evil",
            "more than one statement",
        ),
        (
            "CREATE TABLE t (a int) /*!; CREATE DATABASE evil */",
            "more than one statement",
        ),
        ("CREATE TABLE `other`.`t` (a int)", "database `other`"),
        ("CREATE TABLE `u` (a int)", "creates `u`"),
    ];
    for (sql, says) in cases {
        let e = table(sql)
            .err()
            .unwrap_or_else(|| panic!("accepted: {sql}"));
        assert!(e.contains(says), "{sql}: {e}");
    }
}
