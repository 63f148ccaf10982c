//! The real PostgreSQL server on 127.0.0.1:5432 (trust, user postgres).

use std::process::Command;

pub const PG: &str = "postgres://postgres@127.0.0.1:5432";

/// A PostgreSQL database that is dropped with the guard.
pub struct PgDb {
    pub name: String,
}

impl PgDb {
    pub fn new(tag: &str) -> Self {
        let name = format!("amlt_{tag}_{}_{}", std::process::id(), rand_suffix());
        psql("postgres", &format!("CREATE DATABASE {name}"));
        PgDb { name }
    }
    pub fn url(&self) -> String {
        format!("{PG}/{}", self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h127.0.0.1", "-Upostgres", "-qAtc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn rand_suffix() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}", n & 0xfffff)
}

pub fn psql(db: &str, q: &str) -> String {
    psql_with(&[], &[], db, q)
}

/// psql as `postgres` with extra arguments and environment (another cluster, TLS settings).
fn psql_with(args: &[&str], env: &[(&str, &str)], db: &str, q: &str) -> String {
    let out = Command::new("psql")
        .args(["-h127.0.0.1", "-Upostgres", "-qAt", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .args([db, "-c", q])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The TLS-only cluster of scripts/postgres-tls.sh (started when it is not running).
pub const PG_TLS_PORT: u16 = 5433;
/// Its password user (scram-sha-256) and password.
pub const PG_TLS_USER: &str = "amlmigrate_pw";
pub const PG_TLS_PASSWORD: &str = "amlmigrate-pg-pw";

/// Starts (or finds) the TLS-only cluster; returns its CA file and a CA that signed nothing.
pub fn pg_tls() -> (String, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres-tls.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/postgres-tls.sh could not start the TLS-only PostgreSQL on port {PG_TLS_PORT} \
         (scripts/test.sh runs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let other = ca.replace("/ca.pem", "/other-ca.pem");
    (ca, other)
}

/// A database on the TLS-only cluster, owned by [`PG_TLS_USER`], dropped with the guard.
pub struct TlsPgDb {
    pub name: String,
    pub ca: String,
}

impl TlsPgDb {
    pub fn new(tag: &str) -> Self {
        let (ca, _) = pg_tls();
        let name = format!("amlt_{tag}_{}_{}", std::process::id(), rand_suffix());
        let db = TlsPgDb { name, ca };
        db.psql(
            "postgres",
            &format!("CREATE DATABASE {} OWNER {PG_TLS_USER}", db.name),
        );
        db
    }

    /// `postgres://amlmigrate_pw@127.0.0.1:5433/NAME` (no password, no parameters).
    pub fn url(&self) -> String {
        format!(
            "postgres://{PG_TLS_USER}@127.0.0.1:{PG_TLS_PORT}/{}",
            self.name
        )
    }

    /// [`Self::url`] with `sslmode=verify-full&sslrootcert=CA`.
    pub fn verified_url(&self) -> String {
        format!("{}?sslmode=verify-full&sslrootcert={}", self.url(), self.ca)
    }

    /// psql as `postgres`, over verified TLS.
    pub fn psql(&self, db: &str, q: &str) -> String {
        let port = format!("-p{PG_TLS_PORT}");
        let env = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &self.ca)];
        psql_with(&[&port], &env, db, q)
    }
}

impl Drop for TlsPgDb {
    fn drop(&mut self) {
        // Not psql(): a panic while dropping during a failed test would abort the run.
        let port = format!("-p{PG_TLS_PORT}");
        let _ = Command::new("psql")
            .args(["-h127.0.0.1", "-Upostgres", "-qAt", &port, "postgres", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .envs([("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &self.ca)])
            .output();
    }
}
