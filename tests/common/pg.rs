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
    let out = Command::new("psql")
        .args([
            "-h127.0.0.1",
            "-Upostgres",
            "-qAt",
            "-v",
            "ON_ERROR_STOP=1",
            db,
            "-c",
            q,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
