//! Helpers for end-to-end tests: the real `amlmigrate` binary against the real MariaDB on
//! 127.0.0.1:3306 (root, empty password), each test in its own uniquely named databases.
#![allow(dead_code)]

pub mod chromium;
pub mod cluster;
pub mod gate;
pub mod mlflow;
pub mod pg;
pub mod registry;
pub mod s3;
pub mod upgrade;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub const MYSQL: &str = "mysql://root@127.0.0.1:3306";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_amlmigrate")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique database name; the database is dropped when the guard goes.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("amlt_{tag}_{}_{n}_{:x}", std::process::id(), nanos & 0xffff);
        sql(None, &format!("DROP DATABASE IF EXISTS `{name}`"));
        TestDb { name }
    }

    /// A name only (nothing is created), for restore targets; dropped like the others.
    pub fn create(tag: &str) -> Self {
        let db = Self::new(tag);
        sql(
            None,
            &format!("CREATE DATABASE `{}` CHARACTER SET utf8mb4", db.name),
        );
        db
    }

    pub fn with_fixture(tag: &str) -> Self {
        let db = Self::create(tag);
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mysql/fixture.sql");
        let out = Command::new("mariadb")
            .args(["-uroot", "-h127.0.0.1", &db.name])
            .stdin(std::fs::File::open(fixture).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fixture: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args([
                "-uroot",
                "-h127.0.0.1",
                "-e",
                &format!("DROP DATABASE IF EXISTS `{}`", self.name),
            ])
            .output();
    }
}

/// Runs SQL through the `mariadb` client; returns tab-separated rows without headers.
pub fn sql(db: Option<&str>, q: &str) -> String {
    sql_at(&[], db, q)
}

/// Like [`sql`], with extra client arguments to reach another server (`-P3307 --ssl …`).
pub fn sql_at(server: &[&str], db: Option<&str>, q: &str) -> String {
    let mut cmd = Command::new("mariadb");
    cmd.args(["-uroot", "-h127.0.0.1", "-N", "-B"]).args(server);
    if let Some(db) = db {
        cmd.arg(db);
    }
    let out = cmd.arg("-e").arg(q).output().unwrap();
    assert!(
        out.status.success(),
        "sql failed: {q}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn tables(db: &str) -> Vec<String> {
    tables_at(&[], db)
}

pub fn tables_at(server: &[&str], db: &str) -> Vec<String> {
    sql_at(
        server,
        None,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
        ),
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// `CHECKSUM TABLE … EXTENDED` and `COUNT(*)` of every base table.
pub fn checksums(db: &str) -> BTreeMap<String, (String, String)> {
    checksums_at(&[], db)
}

pub fn checksums_at(server: &[&str], db: &str) -> BTreeMap<String, (String, String)> {
    tables_at(server, db)
        .into_iter()
        .map(|t| {
            let q = format!("`{db}`.`{}`", t.replace('`', "``"));
            let sum = sql_at(server, None, &format!("CHECKSUM TABLE {q} EXTENDED"));
            let sum = sum.trim().rsplit('\t').next().unwrap().to_string();
            let count = sql_at(server, None, &format!("SELECT COUNT(*) FROM {q}"));
            (t, (sum, count.trim().to_string()))
        })
        .collect()
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn amlmigrate(args: &[&str]) -> Run {
    amlmigrate_env(args, &[])
}

pub fn amlmigrate_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null());
    cmd.env_remove("AMLMIGRATE_REPO");
    cmd.env_remove("AMLMIGRATE_MYSQL");
    cmd.env_remove("AMLMIGRATE_MYSQL_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    to_run(cmd.output().unwrap())
}

/// Runs and asserts success; returns stdout trimmed.
pub fn ok(args: &[&str]) -> String {
    let r = amlmigrate(args);
    assert_eq!(r.code, 0, "amlmigrate {args:?} failed: {r:?}");
    r.stdout.trim().to_string()
}

pub fn temp_repo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    (dir, repo)
}

pub fn backup(repo: &Path, db: &str) -> String {
    ok(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        MYSQL,
        "--databases",
        db,
        "--quiet",
    ])
}

/// `backup --json` of one database: (snapshot id, bytes it added to the repository).
pub fn backup_stored(repo: &Path, db: &str) -> (String, u64) {
    let out = ok(&[
        "backup",
        "--init",
        "--repo",
        repo.to_str().unwrap(),
        "--mysql",
        MYSQL,
        "--databases",
        db,
        "--json",
    ]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    (
        j["snapshot"].as_str().unwrap().to_string(),
        j["bytes_stored"].as_u64().unwrap(),
    )
}

/// Bytes in a deduplicated repository's packs.
pub fn pack_bytes(repo: &Path) -> u64 {
    files_under(&repo.join("data"))
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum()
}

/// `amlmigrate restore --repo REPO SNAPSHOT --mysql MYSQL --rename FROM=TO`.
pub fn restore_renamed(repo: &Path, snapshot: &str, from: &str, to: &str) -> Run {
    amlmigrate(&[
        "restore",
        "--repo",
        repo.to_str().unwrap(),
        snapshot,
        "--mysql",
        MYSQL,
        "--rename",
        &format!("{from}={to}"),
    ])
}

/// Rewrites a deduplicated (format 2) snapshot in place as a plain one (format 1: one
/// `parts/<part>.tar.zst` object per part), through `amlmigrate export`, so that a test can
/// damage or forge a part file the way an attacker with write access to the bucket can.
/// Readers decide per part, so the repository reads it as before.
pub fn plain_snapshot(repo: &Path, id: &str) {
    let dir = repo.join("snapshots").join(id);
    if dir.join("parts").exists() {
        return;
    }
    let out = repo.with_file_name(format!("export-{id}"));
    ok(&[
        "export",
        "--repo",
        repo.to_str().unwrap(),
        id,
        "--to",
        out.to_str().unwrap(),
    ]);
    std::fs::rename(out.join("parts"), dir.join("parts")).unwrap();
    std::fs::rename(out.join("manifest.json"), dir.join("manifest.json")).unwrap();
    let _ = std::fs::remove_file(dir.join("refs"));
    std::fs::remove_dir_all(&out).unwrap();
}

/// The only part file of a one-database snapshot (made plain first, see [`plain_snapshot`]).
pub fn part_file(repo: &Path, id: &str) -> PathBuf {
    plain_snapshot(repo, id);
    let dir = repo.join("snapshots").join(id).join("parts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.pop().unwrap()
}

/// Rewrites the only part of snapshot `id` through `f` (entry path → bytes, in archive order),
/// recomputing the part's and every entry's sha256 and size in the manifest, as someone who can
/// write the bucket can: `verify` still calls the snapshot sound.
pub fn forge_part(repo: &Path, id: &str, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>)) {
    let part_path = part_file(repo, id);
    let (order, mut files) = read_plain_part(&part_path);
    f(&mut files);
    let manifest_path = repo.join("snapshots").join(id).join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let parts = m["parts"].as_array_mut().unwrap();
    assert_eq!(parts.len(), 1, "forge_part works on one-part snapshots");
    write_plain_part(&part_path, &order, &files, &mut parts[0]);
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// The entries of a plain (format 1) part file: their paths in archive order, and their bytes.
pub fn read_plain_part(path: &Path) -> (Vec<String>, BTreeMap<String, Vec<u8>>) {
    use std::io::Read;
    let raw = zstd::decode_all(&std::fs::read(path).unwrap()[..]).unwrap();
    let mut order = Vec::new();
    let mut files = BTreeMap::new();
    for e in tar::Archive::new(&raw[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        order.push(path.clone());
        files.insert(path, buf);
    }
    (order, files)
}

/// Writes `paths` of `files` as the plain part at `path` and sets the manifest's `part` entry
/// (size, sha256, every entry's size and sha256) to match, as a forger would.
pub fn write_plain_part(
    path: &Path,
    paths: &[String],
    files: &BTreeMap<String, Vec<u8>>,
    part: &mut serde_json::Value,
) {
    let out = std::fs::File::create(path).unwrap();
    let mut w = amlmigrate::archive::PartWriter::new(out, 3, 0).unwrap();
    for p in paths {
        w.append(p, &files[p]).unwrap();
    }
    let (_, info) = w.finish().unwrap();
    part["size"] = info.size.into();
    part["sha256"] = info.sha256.into();
    part["entries"] = serde_json::to_value(&info.entries).unwrap();
}

/// Fills `db.big` with `rows` rows of about 220 bytes, fast (MariaDB's sequence engine).
pub fn big_table(db: &str, rows: u64) {
    sql(
        Some(db),
        &format!(
            "CREATE TABLE big (id BIGINT PRIMARY KEY, v VARCHAR(255), d DOUBLE) ENGINE=InnoDB; \
             INSERT INTO big SELECT seq, REPEAT(CONCAT('row-', seq), 20), seq / 7 FROM seq_1_to_{rows}"
        ),
    );
}

/// Starts (or finds) the TLS-only MariaDB on 127.0.0.1:3307 (`scripts/mariadb-tls.sh`);
/// returns its CA file.
pub fn tls_server() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mariadb-tls.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Every file under `dir`, sorted; none when `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// An age key pair: (recipient, identity file DIR/NAME).
pub fn age_key(dir: &Path, name: &str) -> (String, PathBuf) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let file = dir.join(name);
    std::fs::write(&file, format!("{}\n", id.to_string().expose_secret())).unwrap();
    (id.to_public().to_string(), file)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// Plants a lock object in the lock folder `dir` as another process would have written it.
pub fn plant_lock(dir: &Path, name: &str, kind: &str, what: &str, host: &str, pid: u32) {
    let now = chrono::Utc::now();
    let body = serde_json::json!({
        "kind": kind, "what": what, "hostname": host, "pid": pid,
        "created": now - chrono::Duration::minutes(1),
        "expires": now + chrono::Duration::minutes(5),
    });
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), serde_json::to_vec(&body).unwrap()).unwrap();
}
