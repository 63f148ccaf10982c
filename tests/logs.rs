//! `-v`/`-vv` say what was read, written and decided (databases, tables, parts, sizes), as text
//! or as JSON lines (`--log-format json`, what the CronJob uses), and never a password: every
//! password source is set (URL, password file, environment, decoys in the variables not used).

mod common;

use common::mlflow::small_mlflow_26_db;
use common::pg::PgDb;
use common::*;
use serde_json::Value;

const MYSQL_PW: &str = "My-L0gs-S3cret-7q1";
const SECRETS: [&str; 5] = [
    MYSQL_PW,
    "Env-Decoy-Mysql-44x",
    "Pg-Decoy-Env-91z",
    "Aws-Decoy-Secret-0k2",
    "Pg-Url-S3cret-5w8",
];

fn logs_user() {
    sql(
        None,
        &format!(
            "CREATE USER IF NOT EXISTS 'amllogs'@'%' IDENTIFIED BY '{MYSQL_PW}'; \
             ALTER USER 'amllogs'@'%' IDENTIFIED BY '{MYSQL_PW}'; \
             GRANT ALL PRIVILEGES ON *.* TO 'amllogs'@'%'"
        ),
    );
}

fn assert_no_secret(r: &Run) {
    for s in SECRETS {
        assert!(!r.all().contains(s), "{s} leaked: {r:?}");
    }
}

/// Decoys in every variable a password could come from but that this run does not use.
fn decoys() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PGPASSWORD", SECRETS[2]),
        ("AWS_SECRET_ACCESS_KEY", SECRETS[3]),
        ("AMLMIGRATE_REGISTRY_PASSWORD", SECRETS[3]),
    ]
}

#[test]
fn verbose_backup_and_restore_log_each_table_and_part_and_never_a_password() {
    logs_user();
    let db = TestDb::with_fixture("logs");
    let target = TestDb::new("logs_to");
    let (dir, repo) = temp_repo();
    let repo_s = repo.to_str().unwrap();
    let pw_file = dir.path().join("mysql-pw");
    std::fs::write(&pw_file, format!("{MYSQL_PW}\n")).unwrap();
    let mut perms = std::fs::metadata(&pw_file).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&pw_file, perms).unwrap();

    // Password from the file; the environment's is a decoy the file wins over.
    let mut env = decoys();
    env.push(("AMLMIGRATE_MYSQL_PASSWORD", SECRETS[1]));
    let r = amlmigrate_env(
        &[
            "backup",
            "--init",
            "--repo",
            repo_s,
            "--mysql",
            "mysql://amllogs@127.0.0.1:3306",
            "--mysql-password-file",
            pw_file.to_str().unwrap(),
            "--databases",
            &db.name,
            "-vv",
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_no_secret(&r);
    let id = r.stdout.trim().to_string();
    for want in [
        format!("backup: writing snapshot {id} into {repo_s}"),
        "backup: MySQL source mysql (mysql://amllogs@127.0.0.1:3306)".to_string(),
        format!("backup: table {}.integers started", db.name),
        format!("backup: table {}.texts done: ", db.name),
        format!("backup: wrote part parts/mysql-{}.tar.zst", db.name),
        format!("backup: committed snapshot {id}: 1 part(s), "),
    ] {
        assert!(r.stderr.contains(&want), "{want}: {r:?}");
    }
    // Without -v none of it.
    let quiet = amlmigrate_env(
        &["verify", "--repo", repo_s, &id, "--progress", "never"],
        &env,
    );
    assert_eq!(quiet.code, 0, "{quiet:?}");
    assert!(!quiet.stderr.contains("verify:"), "{quiet:?}");

    // Restore with the password from the environment.
    let mut env = decoys();
    env.push(("AMLMIGRATE_MYSQL_PASSWORD", MYSQL_PW));
    let r = amlmigrate_env(
        &[
            "restore",
            "--repo",
            repo_s,
            &id,
            "--mysql",
            "mysql://amllogs@127.0.0.1:3306",
            "--rename",
            &format!("{}={}", db.name, target.name),
            "-vv",
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_no_secret(&r);
    assert!(
        r.stderr.contains("restore: table ") && r.stderr.contains(".integers done: "),
        "{r:?}"
    );

    // JSON lines, the password in the URL: every stderr line is one JSON object.
    let r = amlmigrate_env(
        &[
            "backup",
            "--init",
            "--repo",
            repo_s,
            "--mysql",
            &format!("mysql://amllogs:{MYSQL_PW}@127.0.0.1:3306"),
            "--databases",
            &db.name,
            "-v",
            "--log-format",
            "json",
            "--quiet",
        ],
        &decoys(),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_no_secret(&r);
    let lines: Vec<Value> = r
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let done = lines
        .iter()
        .find(|l| l["table"] == "integers" && l["rows"].is_u64())
        .unwrap_or_else(|| panic!("no event for table integers: {r:?}"));
    assert_eq!(done["level"], "INFO");
    assert_eq!(done["db"], db.name.as_str());
    assert!(done["timestamp"].is_string() && done["message"].is_string());
    assert!(
        lines
            .iter()
            .any(|l| l["snapshot"].is_string() && l["parts"] == 1)
    );
}

#[test]
fn a_verbose_mlflow_migration_logs_its_tables_and_never_a_password() {
    logs_user();
    let from = small_mlflow_26_db("logs_mlf");
    let to = PgDb::new("logs_mlf");
    let mut env = decoys();
    env.retain(|(k, _)| *k != "PGPASSWORD");
    env.push(("PGPASSWORD", SECRETS[2]));
    env.push(("AMLMIGRATE_MYSQL_PASSWORD", MYSQL_PW));
    let r = amlmigrate_env(
        &[
            "mlflow",
            "migrate",
            "--from",
            &format!("mysql://amllogs@127.0.0.1:3306/{}", from.name),
            "--to",
            &to.url().replace(
                "postgres://postgres@",
                &format!("postgres://postgres:{}@", SECRETS[4]),
            ),
            "-vv",
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_no_secret(&r);
    for want in [
        "mlflow migrate: table ",
        ".metrics done: ",
        ".runs done: ",
        "mlflow migrate: committed ",
    ] {
        assert!(r.stderr.contains(want), "{want}: {r:?}");
    }
    assert!(
        r.stderr.contains(&format!(
            "into postgres://postgres@127.0.0.1:5432/{}",
            to.name
        )),
        "{r:?}"
    );
}
