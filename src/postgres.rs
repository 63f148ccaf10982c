//! PostgreSQL: connection URLs (password kept as a [`Secret`]) and the COPY text format.

use std::fmt;

use tokio_postgres::{Client, Config, NoTls};

use crate::error::{Error, Result};
use crate::secret::Secret;

#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    pub user: String,
    pub password: Option<Secret>,
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl PgUrl {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::input(format!(
                "invalid PostgreSQL URL {}: {why}; expected postgres://user[:password]@host[:port]/database",
                crate::secret::redact_url(s)
            ))
        };
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(bad(&format!("scheme {} is not postgres://", url.scheme())));
        }
        let decode = |p: &str| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let database = decode(url.path().trim_start_matches('/'));
        if database.is_empty() {
            return Err(bad("no database"));
        }
        let user = decode(url.username());
        Ok(PgUrl {
            user: if user.is_empty() {
                "postgres".into()
            } else {
                user
            },
            password: url.password().map(|p| Secret::new(decode(p))),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: url.port().unwrap_or(5432),
            database,
        })
    }

    pub fn with_fallback_password(mut self, password: Option<Secret>) -> Self {
        if self.password.is_none() {
            self.password = password;
        }
        self
    }

    pub fn redacted(&self) -> String {
        format!(
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    /// Connects; the connection task runs on the runtime until the client is dropped.
    pub async fn connect(&self) -> Result<Client> {
        let mut cfg = Config::new();
        cfg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name("amlmigrate")
            .connect_timeout(std::time::Duration::from_secs(20));
        if let Some(p) = &self.password {
            cfg.password(p.expose());
        }
        let (client, connection) = cfg.connect(NoTls).await.map_err(|e| {
            let detail = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            let hint = match e.as_db_error().map(|d| d.code().code()) {
                Some("28P01") | Some("28000") => " (check the password: in the URL or PGPASSWORD)",
                Some("3D000") => " (create the database first: CREATE DATABASE …)",
                _ => " (check the host and port and that the server is running)",
            };
            Error::Connection(format!(
                "cannot connect to PostgreSQL at {}: {detail}{hint}",
                self.redacted()
            ))
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("PostgreSQL connection closed: {e}");
            }
        });
        Ok(client)
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({})", self.redacted())
    }
}

/// A PostgreSQL error with its server message and detail, for error texts.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => match d.detail() {
            Some(detail) => format!("{} ({detail})", d.message()),
            None => d.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// Appends text escaped for `COPY … FROM STDIN` (text format).
pub fn copy_escape_into(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &c) in s.iter().enumerate() {
        let esc = match c {
            b'\\' => b'\\',
            b'\t' => b't',
            b'\n' => b'n',
            b'\r' => b'r',
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        out.push(b'\\');
        out.push(esc);
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let u = PgUrl::parse("postgres://mlflow:s%40cret@pg.example:5433/mlflow").unwrap();
        assert_eq!(u.password.as_ref().unwrap().expose(), "s@cret");
        assert_eq!(u.redacted(), "postgres://mlflow@pg.example:5433/mlflow");
        assert!(!format!("{u} {u:?}").contains("cret"));
        let e = PgUrl::parse("postgres://u:topsecret@h:bad/db")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("topsecret"), "{e}");
        assert!(PgUrl::parse("postgres://h").is_err());
    }

    #[test]
    fn copy_text_escapes_delimiters() {
        let mut out = Vec::new();
        copy_escape_into(&mut out, b"a\tb\nc\\d\re");
        assert_eq!(out, b"a\\tb\\nc\\\\d\\re");
    }
}
