//! What `SHOW CREATE` returns passes; every way found to smuggle a second statement or another
//! object does not.

use super::*;

fn obj(kind: ObjectKind, name: &str, sql: &str) -> SchemaObject {
    SchemaObject::plain(kind, name.into(), sql.into())
}

fn check_in_mode(o: &SchemaObject) -> Result<(), String> {
    let tables = BTreeSet::from(["orders".to_string(), "t".to_string()]);
    let databases = BTreeSet::from(["db".to_string(), "mysql".to_string(), "other".to_string()]);
    let scope = crate::mysql::sqlparse::Scope {
        source: "db",
        tables: &tables,
        databases: &databases,
        server: 110402,
    };
    super::super::objects::parse(o, &scope).map(|_| ())
}

fn check(kind: ObjectKind, name: &str, sql: &str) -> Result<(), String> {
    check_in_mode(&obj(kind, name, sql))
}

#[test]
fn what_show_create_returns_passes() {
    use ObjectKind::*;
    let ok = [
        (
            Table,
            "t",
            "CREATE TABLE `t` (\n  `a` int(11) DEFAULT NULL COMMENT 'x; y',\n  `b` int AS (a + 1) VIRTUAL\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci /*!50100 PARTITION BY HASH (a) */",
        ),
        (
            Table,
            "weird name; with ` backtick",
            "CREATE TABLE `weird name; with `` backtick` (`a` int)",
        ),
        (
            View,
            "v",
            "CREATE OR REPLACE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select `db`.`orders`.`id` AS `id` from `db`.`orders`",
        ),
        (
            Trigger,
            "orders_ai",
            "CREATE DEFINER=`root`@`127.0.0.1` TRIGGER orders_ai AFTER INSERT ON orders FOR EACH ROW\n  INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id))",
        ),
        (
            Trigger,
            "orders_bi",
            "CREATE DEFINER=`root`@`%` TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW\n  BEGIN\n    IF NEW.note IS NULL THEN SET NEW.note = 'set by trigger'; END IF;\n  END",
        ),
        (
            Function,
            "double_it",
            "CREATE DEFINER=`root`@`localhost` FUNCTION `double_it`(x INT) RETURNS int(11)\n    DETERMINISTIC\nRETURN x * 2",
        ),
        (
            Procedure,
            "count_orders",
            "CREATE DEFINER=`root`@`localhost` PROCEDURE `count_orders`(OUT n INT)\nBEGIN SELECT COUNT(*) INTO n FROM orders; END",
        ),
        (
            Function,
            "f",
            "CREATE DEFINER='u'@'h' FUNCTION `f`(a varchar(10)) RETURNS varchar(20) CHARSET utf8mb4 COLLATE utf8mb4_bin\n    READS SQL DATA\n    COMMENT 'c;'\nBEGIN\n  DECLARE x INT DEFAULT 0;\n  DECLARE CONTINUE HANDLER FOR SQLSTATE '02000', NOT FOUND BEGIN SET x = 1; END;\n  lbl: LOOP\n    SET x = x + IF(a > 1, 1, 2);\n    IF x > 10 THEN LEAVE lbl; ELSEIF x > 5 THEN SET x = x + 1; ELSE BEGIN END; END IF;\n  END LOOP lbl;\n  WHILE x < 20 DO SET x = CASE WHEN x > 1 THEN x + 1 ELSE x END; END WHILE;\n  REPEAT SET x = x + 1; UNTIL x > 30 END REPEAT;\n  CASE x WHEN 1 THEN SET x = 2; ELSE SET x = REPEAT('a', 2); END CASE;\n  DROP TEMPORARY TABLE IF EXISTS tmp;\n  RETURN CONCAT(a, x);\nEND",
        ),
        (
            Event,
            "e",
            "CREATE DEFINER=`root`@`localhost` EVENT `e` ON SCHEDULE EVERY 1 DAY STARTS '2024-01-01 00:00:00' ON COMPLETION NOT PRESERVE ENABLE DO BEGIN DELETE FROM t WHERE a < 0; END",
        ),
    ];
    for (kind, name, sql) in ok {
        assert_eq!(check(kind, name, sql), Ok(()), "{sql}");
    }
}

#[test]
fn a_second_statement_or_another_object_is_refused() {
    use ObjectKind::*;
    let bad = [
        (
            Table,
            "t",
            "CREATE TABLE `t` (a int); CREATE DATABASE evil",
            "more than one",
        ),
        (
            Table,
            "t",
            "CREATE TABLE `t` (a int) /*!; CREATE DATABASE evil */",
            "more than one",
        ),
        (
            Table,
            "t",
            "CREATE TABLE `t` (a int) SELECT * FROM mysql.user",
            "from a query",
        ),
        (
            Table,
            "t",
            "CREATE TABLE `other`.`t` (a int)",
            "database `other`",
        ),
        (Table, "t", "CREATE TABLE `u` (a int)", "creates `u`"),
        (Table, "t", "CREATE DATABASE t", "does not create a table"),
        (
            Table,
            "t",
            "CREATE TEMPORARY TABLE t (a int)",
            "does not create a table",
        ),
        (
            View,
            "v",
            "CREATE VIEW v AS SELECT 1; DROP DATABASE mysql",
            "more than one",
        ),
        (
            View,
            "v",
            "CREATE VIEW v AS SELECT 1 --x\n; DROP DATABASE mysql",
            "more than one",
        ),
        (
            Trigger,
            "tr",
            "CREATE TRIGGER tr BEFORE INSERT ON mysql.user FOR EACH ROW SET @a = 1",
            "not a table",
        ),
        (
            Trigger,
            "tr",
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET @a = 1; CREATE DATABASE evil",
            "more than one",
        ),
        (
            Trigger,
            "tr",
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW BEGIN SET @a = 1; END; CREATE DATABASE evil",
            "more than one",
        ),
        (
            Trigger,
            "tr",
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW INSERT INTO log (begin) VALUES (1); CREATE DATABASE evil; SELECT 1 AS end",
            "",
        ),
        (
            Function,
            "f",
            "CREATE FUNCTION f() RETURNS int RETURN CASE WHEN 1 THEN begin END; CREATE DATABASE evil; END CASE",
            "",
        ),
        (
            Procedure,
            "p",
            "CREATE PROCEDURE p() BEGIN SELECT CASE WHEN 1 THEN begin ELSE 0 END INTO @v; END; CREATE DATABASE evil; SELECT CASE WHEN 1 THEN 1 END END",
            "",
        ),
        (
            Procedure,
            "p",
            "CREATE PROCEDURE p() BEGIN SELECT 1; END",
            "creates",
        ),
        (
            Event,
            "e",
            "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1; CREATE DATABASE evil",
            "more than one",
        ),
    ];
    for (kind, name, sql, says) in bad {
        let name = if says == "creates" { "q" } else { name };
        let err = check(kind, name, sql).expect_err(sql);
        assert!(err.contains(says), "{sql}: {err}");
    }
}

#[test]
fn the_objects_sql_mode_decides_how_strings_end() {
    let sql = "CREATE TABLE `t` (a int) COMMENT 'x\\'; CREATE DATABASE evil; -- '";
    let mut o = obj(ObjectKind::Table, "t", sql);
    // With backslash escapes the comment is one string: one statement.
    assert_eq!(check_in_mode(&o), Ok(()));
    o.sql_mode = Some("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES".into());
    assert!(check_in_mode(&o).is_err());
    o.sql_mode = Some("ORACLE".into());
    assert!(check_in_mode(&o).is_err());
}

#[test]
fn server_names_must_be_known() {
    let known = BTreeSet::from(["utf8mb4".to_string()]);
    assert!(check_server_name("character set", "utf8mb4", &known).is_ok());
    assert!(check_server_name("character set", "", &known).is_ok());
    let e = check_server_name("character set", "utf8mb4; CREATE DATABASE x", &known).unwrap_err();
    assert!(e.contains("not one the target server knows"), "{e}");
}
