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
        r.stderr.contains("WARN")
            && r.stderr.contains("--pg-password-file")
            && r.stderr.contains("can be read by other users (mode 0644)")
            && r.stderr.contains(&format!("chmod 600 {}", pg.display())),
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

/// The text of a password no test server knows: it appears in no output unless leaked.
const URL_PASSWORD: &str = "Url-Pw-9q7";

/// One way to give a malformed value: the command line, the environment, and what the error
/// must be about (so that a case cannot pass by failing for another reason).
struct Case {
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    about: &'static str,
    /// Whether the command fails (a push that fails is only a warning).
    fails: bool,
}

fn case(about: &'static str, args: &[&str]) -> Case {
    Case {
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        about,
        fails: true,
    }
}

/// Runs a case as given, with `--json` and with `-vv`: each must fail (or warn) about the
/// value and show no password. Returns what went wrong, so that one run lists every case.
fn failures_showing_the_password(c: &Case) -> Vec<String> {
    let mut out = Vec::new();
    for extra in [None, Some("--json"), Some("-vv")] {
        let mut a: Vec<&str> = c.args.iter().map(String::as_str).collect();
        a.extend(extra);
        let env: Vec<(&str, &str)> = c.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = amlmigrate_env(&a, &env);
        let all = r.all();
        if (r.code == 0) == c.fails || !all.contains(c.about) {
            out.push(format!("{a:?}: not refused about {:?}: {r:?}", c.about));
        } else if all.contains(URL_PASSWORD) || all.contains("Pw-9q7") {
            out.push(format!("{a:?} showed the password: {r:?}"));
        }
    }
    out
}

#[test]
fn no_malformed_url_shows_its_password() {
    // A repository with a snapshot, so that restore gets as far as its --mysql.
    let db = TestDb::create("urlpw");
    let (tmp, repo) = temp_repo();
    backup(&repo, &db.name);
    let repo = repo.to_str().unwrap();
    let pw = URL_PASSWORD;
    let mut cases = Vec::new();
    // MySQL URLs, as --mysql of backup (named and unnamed) and restore, and mlflow's --from.
    for url in [
        format!("mysql://root:{pw}@127.0.0.1:notaport/db"),
        format!("mysql://root:{pw}"),
        format!("mysql://root:12#{pw}@127.0.0.1"),
        format!("mysql:/root:{pw}@127.0.0.1"),
        format!("mysql://root:a/{pw}@127.0.0.1/db"),
        format!("mysql://root@127.0.0.1/db?password={pw}"),
        format!("mariadb://root:{pw}@127.0.0.1/db?ssl-mode=bogus"),
        format!("mysql://root:{pw}@127.0.0.1/db?ssl-mode=a{pw}"),
    ] {
        let pg = "postgres://postgres@127.0.0.1:5432/none";
        cases.push(case(
            "mysql://",
            &["backup", "--repo", repo, "--mysql", &url],
        ));
        let named = format!("src={url}");
        cases.push(case(
            "mysql://",
            &["backup", "--repo", repo, "--mysql", &named],
        ));
        let restore = ["restore", "--repo", repo, "latest", "--mysql", &url];
        cases.push(case("mysql://", &restore));
        let migrate = ["mlflow", "migrate", "--from", &url, "--to", pg];
        cases.push(case("mysql://", &migrate));
    }
    let no_scheme = format!("src=root:{pw}@127.0.0.1:3306");
    cases.push(case(
        "mysql://",
        &["backup", "--repo", repo, "--mysql", &no_scheme],
    ));
    let no_name = format!("root:{pw}@127.0.0.1:3306");
    cases.push(case(
        "--mysql",
        &["backup", "--repo", repo, "--mysql", &no_name],
    ));
    // PostgreSQL URLs, as mlflow's --to.
    for url in [
        format!("postgres://u:{pw}@127.0.0.1:bad/db"),
        format!("postgres://u@127.0.0.1/db?password={pw}"),
        format!("postgres://u@127.0.0.1/db?password=a@{pw}"),
        format!("postgres://u:{pw}"),
        format!("postgresql://u:12#{pw}@127.0.0.1/db"),
        format!("u:{pw}@127.0.0.1/db"),
        format!("postgres://u@127.0.0.1/db?sslmode=verify-full&options=-c%20x%3D{pw}&bad"),
    ] {
        let from = "mysql://root@127.0.0.1:3306/none";
        let migrate = ["mlflow", "migrate", "--from", from, "--to", &url];
        cases.push(case("PostgreSQL URL", &migrate));
    }
    // --metrics-push: pushed after a verify (a failed push is a warning), and refused by
    // `schedule install`, which would store it in a CronJob.
    for url in [
        format!("http://push:{pw}@127.0.0.1:notaport"),
        format!("ftp://push:{pw}@127.0.0.1:9091"),
        format!("push:{pw}@127.0.0.1:9091"),
    ] {
        let verify = ["verify", "--repo", repo, "latest", "--metrics-push", &url];
        let mut c = case("--metrics-push", &verify);
        c.fails = false;
        cases.push(c);
        let install = [
            "schedule",
            "install",
            "--print",
            "-n",
            "aml-backup",
            "--repo",
            "s3://aml-backups/p",
            "--cron",
            "@daily",
            "--keep-last",
            "3",
            "--metrics-push",
            &url,
        ];
        cases.push(case("--metrics-push", &install));
    }
    // AWS_ENDPOINT_URL with credentials: malformed, and well-formed but unreachable.
    let closed = common::gate::ClosedPort::new();
    for endpoint in [
        format!("http://AKIDEXAMPLE:{pw}@127.0.0.1:notaport"),
        format!("http://AKIDEXAMPLE:{pw}@127.0.0.1:{}", closed.port),
        format!("http://AKIDEXAMPLE:a%40{pw}@127.0.0.1:{}", closed.port),
        format!("ftp://AKIDEXAMPLE:{pw}@127.0.0.1"),
    ] {
        let mut c = case(
            "S3 endpoint",
            &["snapshots", "--repo", "s3://aml-backups/aml"],
        );
        c.env = vec![
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".into()),
            ("AWS_SECRET_ACCESS_KEY", "not-used-here".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
        ];
        cases.push(c);
    }
    // The upgrade configuration's URLs.
    let example = include_str!("../examples/upgrade-1.3-to-1.4.toml");
    for (i, (from, to, about)) in [
        (
            "url = \"mysql://root@10.4.158.198:3306\"",
            format!("url = \"mysql://root:{pw}@10.4.158.198:x\""),
            "MySQL URL",
        ),
        (
            "url = \"postgres://mlflow@10.4.158.200:5432/mlflow\"",
            format!("url = \"postgres://mlflow@10.4.158.200:5432/mlflow?password={pw}\""),
            "PostgreSQL URL",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        assert!(example.contains(from), "{from}");
        let config = tmp.path().join(format!("upgrade-{i}.toml"));
        std::fs::write(&config, example.replacen(from, &to, 1)).unwrap();
        let plan = ["upgrade", "plan", "--config", config.to_str().unwrap()];
        cases.push(case(about, &plan));
    }
    let failures: Vec<String> = cases
        .iter()
        .flat_map(failures_showing_the_password)
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n{}",
        failures.len(),
        cases.len() * 3,
        failures.join("\n\n")
    );
}

#[test]
fn backup_reads_its_password_files_like_every_other_command() {
    let src = TestDb::with_fixture("pwf_backup");
    let user = MysqlUser::new("pwb");
    let (tmp, repo) = temp_repo();
    let file = password_file(tmp.path(), "mysql.pw", MYSQL_PASSWORD);
    let args = [
        "backup",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        &user.url(),
        "--databases",
        &src.name,
        "--mysql-password-file",
        file.to_str().unwrap(),
        "--init",
    ];
    // An empty file is refused before anything is read (root with no password would have
    // logged in with it), naming the file.
    std::fs::write(&file, "\n").unwrap();
    for mysql in [
        "mysql://root@127.0.0.1:3306",
        "src=mysql://root@127.0.0.1:3306",
    ] {
        let mut a = args.to_vec();
        a[4] = mysql;
        let r = amlmigrate(&a);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(
            r.stderr.contains("--mysql-password-file")
                && r.stderr.contains("mysql.pw")
                && r.stderr.contains("empty"),
            "{r:?}"
        );
    }
    let snapshots = repo.join("snapshots");
    assert!(
        !snapshots.exists() || std::fs::read_dir(&snapshots).unwrap().next().is_none(),
        "a snapshot was written"
    );
    // One others can read works, with the warning docs/security.md describes.
    std::fs::write(&file, format!("{MYSQL_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = amlmigrate(&args);
    no_password_shown(&r);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("--mysql-password-file")
            && r.stderr.contains("can be read by other users (mode 0644)")
            && r.stderr.contains(&format!("chmod 600 {}", file.display())),
        "{r:?}"
    );
}
