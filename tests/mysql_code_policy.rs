//! Code that runs with privileges comes only from a snapshot someone vouched for: an unsigned
//! snapshot restores tables, rows and invoker views, and lists its triggers, routines, events
//! and definer views as not restored with the command that restores them; a snapshot signed by
//! a trusted key restores them as mysqldump would, definers kept or mapped with `--definer`.

mod common;

use std::path::Path;

use common::*;

fn count(db: &str, table: &str, schema_col: &str) -> String {
    sql(
        None,
        &format!("SELECT COUNT(*) FROM information_schema.{table} WHERE {schema_col} = '{db}'"),
    )
    .trim()
    .to_string()
}

/// (triggers, routines, events, views) of `db`.
fn code(db: &str) -> [String; 4] {
    [
        count(db, "TRIGGERS", "TRIGGER_SCHEMA"),
        count(db, "ROUTINES", "ROUTINE_SCHEMA"),
        count(db, "EVENTS", "EVENT_SCHEMA"),
        count(db, "VIEWS", "TABLE_SCHEMA"),
    ]
}

/// The fixture, plus an invoker view reading only its own tables and an event.
fn source() -> TestDb {
    let src = TestDb::with_fixture("code_src");
    sql(
        Some(&src.name),
        "CREATE SQL SECURITY INVOKER VIEW v_inv AS SELECT id, amount FROM orders; \
         CREATE EVENT e_daily ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0",
    );
    src
}

fn restore(repo: &Path, id: &str, src: &str, dst: &str, extra: &[&str]) -> Run {
    let rename = format!("{src}={dst}");
    let mut args = vec!["restore", "--repo", repo.to_str().unwrap(), id];
    args.extend(["--mysql", MYSQL, "--rename", &rename]);
    args.extend(extra);
    amlmigrate(&args)
}

/// Runs the command a printed line ends with through a shell, as a reader would paste it, in
/// `dir`, with this build first on the PATH.
fn run_printed(line: &str, dir: &Path) -> std::process::Output {
    let cmd = &line[line.find("amlmigrate restore").unwrap()..];
    let bin_dir = Path::new(bin()).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("PATH", path)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn an_unsigned_snapshot_restores_tables_and_invoker_views_and_lists_the_rest_with_the_command() {
    let (_dir, repo) = temp_repo();
    let src = source();
    let dst = TestDb::new("code_dst");
    let id = backup(&repo, &src.name);
    assert_eq!(code(&src.name), ["2", "2", "1", "3"]);

    let r = restore(&repo, &id, &src.name, &dst.name, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(checksums(&dst.name), checksums(&src.name));
    // Only the invoker view; the definer views (one calls a function) are left out.
    assert_eq!(code(&dst.name), ["0", "0", "0", "1"], "{r:?}");
    assert_eq!(
        sql(Some(&dst.name), "SELECT COUNT(*) FROM v_inv").trim(),
        "2"
    );
    for o in [
        "orders_ai",
        "orders_bi",
        "double_it",
        "count_orders",
        "e_daily",
        "v_orders",
    ] {
        assert!(
            r.stdout.contains(&format!("`.`{o}` not restored")),
            "{o} not listed: {r:?}"
        );
    }
    // The command it prints restores them.
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("--trust-unsigned-code"))
        .unwrap_or_else(|| panic!("no command: {r:?}"));
    let again = run_printed(line, Path::new("."));
    assert!(again.status.success(), "{again:?}");
    assert_eq!(code(&dst.name), ["2", "2", "1", "3"], "{again:?}");
    assert_eq!(sql(Some(&dst.name), "SELECT double_it(21)").trim(), "42");
}

#[test]
fn a_signed_snapshot_restores_its_code_with_definers_kept_or_mapped() {
    let (dir, repo) = temp_repo();
    let src = source();
    let key = dir.path().join("k");
    ok(&["key", "generate", "--out", key.to_str().unwrap(), "--quiet"]);
    let public = dir.path().join("k.pub");
    let id = ok(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        MYSQL,
        "--databases",
        &src.name,
        "--sign-key",
        key.to_str().unwrap(),
        "--quiet",
    ]);
    let verify = ["--verify-key", public.to_str().unwrap()];

    let kept = TestDb::new("code_kept");
    let r = restore(&repo, &id, &src.name, &kept.name, &verify);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(code(&kept.name), ["2", "2", "1", "3"], "{r:?}");
    let definers = |db: &str| {
        sql(
            None,
            &format!(
                "SELECT DISTINCT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{db}' \
                 UNION SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{db}'"
            ),
        )
    };
    assert_eq!(definers(&kept.name), definers(&src.name));

    let mapped = TestDb::new("code_mapped");
    let user = format!("amlt_definer_{}", std::process::id());
    sql(
        None,
        &format!(
            "CREATE USER IF NOT EXISTS '{user}'@'localhost'; GRANT ALL ON `{}`.* TO '{user}'@'localhost'",
            mapped.name
        ),
    );
    let definer = format!("{user}@localhost");
    let mut args = verify.to_vec();
    args.extend(["--definer", &definer]);
    let r = restore(&repo, &id, &src.name, &mapped.name, &args);
    sql(None, &format!("DROP USER IF EXISTS '{user}'@'localhost'"));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(definers(&mapped.name).trim(), definer, "{r:?}");
    let views = sql(
        None,
        &format!(
            "SELECT DISTINCT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{}'",
            mapped.name
        ),
    );
    assert_eq!(views.trim(), definer);
}

#[test]
fn the_printed_command_quotes_database_names_for_the_shell() {
    let (_dir, repo) = temp_repo();
    let plain = TestDb::new("code_quoted");
    let src = TestDb {
        name: format!("{} it's", plain.name),
    };
    sql(
        None,
        &format!(
            "CREATE DATABASE `{0}`; CREATE TABLE `{0}`.t (id INT PRIMARY KEY); \
             CREATE FUNCTION `{0}`.f() RETURNS INT DETERMINISTIC RETURN 7",
            src.name
        ),
    );
    let dst = TestDb {
        name: format!("{} \"$(touch pwned)\" it's", plain.name),
    };
    let id = backup(&repo, &src.name);
    let r = restore(&repo, &id, &src.name, &dst.name, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains("--trust-unsigned-code"))
        .unwrap_or_else(|| panic!("no command: {r:?}"));
    let work = tempfile::tempdir().unwrap();
    let out = run_printed(line, work.path());
    assert!(out.status.success(), "{line}: {out:?}");
    assert!(
        !work.path().join("pwned").exists(),
        "the shell ran a name: {line}"
    );
    assert_eq!(
        sql(None, &format!("SELECT `{}`.f()", dst.name)).trim(),
        "7",
        "{line}"
    );
}
