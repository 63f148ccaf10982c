//! Passwords come from files (`--…-password-file`) as well as the environment, reach the real
//! servers (a MariaDB user with a password, the TLS PostgreSQL's scram-sha-256 user), are never
//! printed, and key or password files that others can read get a warning.

mod common;

use common::mlflow::small_mlflow_26_db;
use common::pg::*;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const MYSQL_PASSWORD: &str = "My-pw-from-a-file-7";

/// A MariaDB user `name`@127.0.0.1 with [`MYSQL_PASSWORD`] and every right; dropped with the guard.
struct MysqlUser(String);

impl MysqlUser {
    fn new(tag: &str) -> Self {
        let name = format!("amlt_{tag}_{}", std::process::id());
        sql(
            None,
            &format!(
                "DROP USER IF EXISTS '{name}'@'127.0.0.1'; \
                 CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{MYSQL_PASSWORD}'; \
                 GRANT ALL ON *.* TO '{name}'@'127.0.0.1'"
            ),
        );
        MysqlUser(name)
    }

    fn url(&self) -> String {
        format!("mysql://{}@127.0.0.1:3306", self.0)
    }
}

impl Drop for MysqlUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("mariadb")
            .args(["-uroot", "-h127.0.0.1", "-e"])
            .arg(format!("DROP USER IF EXISTS '{}'@'127.0.0.1'", self.0))
            .output();
    }
}

/// A password file with a trailing newline, as `echo pw > file` writes it, mode 0600.
fn password_file(dir: &Path, name: &str, password: &str) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f
}

fn no_password_shown(r: &Run) {
    for pw in [MYSQL_PASSWORD, PG_TLS_PASSWORD] {
        assert!(!r.all().contains(pw), "a password was printed: {r:?}");
    }
}

#[test]
fn mlflow_migrate_and_verify_read_both_passwords_from_files() {
    let src = small_mlflow_26_db("pwf_src");
    let user = MysqlUser::new("pwf");
    let target = TlsPgDb::new("pwf");
    let tmp = tempfile::tempdir().unwrap();
    let my = password_file(tmp.path(), "mysql.pw", MYSQL_PASSWORD);
    let pg = password_file(tmp.path(), "pg.pw", PG_TLS_PASSWORD);
    let from = format!("{}/{}", user.url(), src.name);
    let to = target.verified_url();
    let args = |cmd: &str, pg_file: &Path| -> Vec<String> {
        [
            "mlflow",
            cmd,
            "--from",
            &from,
            "--mysql-password-file",
            my.to_str().unwrap(),
            "--to",
            &to,
            "--pg-password-file",
            pg_file.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        // No password anywhere else: not in the URLs, not in the environment.
        let r = amlmigrate_env(&a, &[("PGPASSWORD", "")]);
        no_password_shown(&r);
        r
    };

    let r = run(args("migrate", &pg));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("warning"), "a 0600 file is fine: {r:?}");
    assert_eq!(
        target
            .psql(&target.name, "SELECT count(*) FROM metrics")
            .trim(),
        "5"
    );
    let r = run(args("verify", &pg));
    assert_eq!(r.code, 0, "{r:?}");

    // A wrong password in the file is rejected by the server, and the message says where the
    // password came from.
    let wrong = password_file(tmp.path(), "wrong.pw", "not-the-password");
    let r = run(args("verify", &wrong));
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr.contains("password authentication failed")
            && r.stderr.contains("--pg-password-file"),
        "{r:?}"
    );

    // A password file others can read gets a warning naming the fix.
    std::fs::set_permissions(&pg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(args("verify", &pg));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("warning: --pg-password-file")
            && r.stderr.contains("mode 0644")
            && r.stderr.contains("chmod 600"),
        "{r:?}"
    );

    // A missing file is bad input, named.
    let r = run(args("verify", &tmp.path().join("missing.pw")));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("--pg-password-file") && r.stderr.contains("missing.pw"),
        "{r:?}"
    );
}

#[test]
fn restore_reads_the_mysql_password_from_a_file() {
    let src = TestDb::with_fixture("pwf_restore");
    let user = MysqlUser::new("pwr");
    let (tmp, repo) = temp_repo();
    backup(&repo, &src.name);
    let target = TestDb::new("pwf_restored");
    let file = password_file(tmp.path(), "mysql.pw", MYSQL_PASSWORD);
    let r = amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        "latest",
        "--mysql",
        &user.url(),
        "--mysql-password-file",
        file.to_str().unwrap(),
        "--rename",
        &format!("{}={}", src.name, target.name),
    ]);
    no_password_shown(&r);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(checksums(&target.name), checksums(&src.name));
}

#[test]
fn an_identity_file_others_can_read_gets_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("age-key.txt");
    std::fs::write(&key, "AGE-SECRET-KEY-1NOTAREALKEY\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let args = [
        "restore",
        "--repo",
        tmp.path().join("repo").to_str().unwrap(),
        "latest",
        "--only",
        "kubernetes",
        "--identity",
        key.to_str().unwrap(),
    ]
    .map(String::from);
    let run = || amlmigrate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let r = run();
    assert!(
        r.stderr.contains("warning: --identity")
            && r.stderr.contains("mode 0644")
            && r.stderr.contains(&format!("chmod 600 {}", key.display())),
        "{r:?}"
    );
    assert!(!r.all().contains("NOTAREALKEY"), "{r:?}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = run();
    assert!(!r.stderr.contains("warning"), "{r:?}");
}
