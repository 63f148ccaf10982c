//! PostgreSQL: connection URLs (password kept as a [`Secret`]), connections (plain or TLS with
//! libpq's `sslmode` / `sslrootcert`, see [`tls`]) and the COPY text format. Every PostgreSQL
//! connection of the tool goes through [`PgUrl::connect`].

pub mod tls;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};
use crate::secret::Secret;
pub use tls::{RootCert, SslMode};

/// A `postgres://` URL. Parsed by `tokio_postgres::Config` (hosts, ports, user, database and
/// libpq's other parameters), except what it does not know: `sslmode=verify-ca|verify-full`
/// and `sslrootcert`, which are taken out first, and the password, which is kept as a
/// [`Secret`] and handed to the driver only while connecting.
#[derive(Clone)]
pub struct PgUrl {
    config: Config,
    pub password: Option<Secret>,
    pub ssl_mode: SslMode,
    pub root_cert: Option<RootCert>,
}

impl PgUrl {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::input(format!(
                "invalid PostgreSQL URL {}: {why}; expected postgres://user@host[:port]/database\
                 [?sslmode=verify-full&sslrootcert=FILE]",
                crate::secret::redact_url(s)
            ))
        };
        let mut url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(bad(&format!("scheme {} is not postgres://", url.scheme())));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if url.fragment().is_some() {
            return Err(bad("a # starts a fragment; write # in a password as %23"));
        }
        let password = url.password().map(|p| {
            Secret::new(
                percent_encoding::percent_decode_str(p)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        });
        let _ = url.set_password(None);
        let mut ssl_mode = None;
        let mut root_cert = None;
        let mut rest = Vec::new();
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "sslmode" => ssl_mode = Some(SslMode::parse(&v).ok_or_else(|| {
                    bad(&format!(
                        "sslmode={v} is not one of disable, prefer, require, verify-ca, verify-full"
                    ))
                })?),
                "sslrootcert" => root_cert = Some(RootCert::parse(&v)),
                "sslcert" | "sslkey" | "sslpassword" => {
                    return Err(bad(&format!(
                        "{k}: client certificates are not supported; authenticate with a password"
                    )));
                }
                "password" => return Err(bad("put no password in the URL's parameters")),
                _ => rest.push((k.into_owned(), v.into_owned())),
            }
        }
        url.set_query(None);
        // Messages name the parameters passed on, never their values (shown redacted).
        let names: Vec<String> = rest.iter().map(|(k, _)| k.clone()).collect();
        if !rest.is_empty() {
            url.query_pairs_mut().extend_pairs(rest);
        }
        let mut config = Config::from_str(url.as_str()).map_err(|e| {
            if names.is_empty() {
                bad(&e.to_string())
            } else {
                bad(&format!("{e} (parameters: {})", names.join(", ")))
            }
        })?;
        if config.get_dbname().is_none_or(str::is_empty) {
            return Err(bad("no database"));
        }
        if config.get_user().is_none_or(str::is_empty) {
            config.user("postgres");
        }
        Ok(PgUrl {
            config,
            password,
            ssl_mode: ssl_mode.unwrap_or_default(),
            root_cert,
        })
    }

    pub fn with_fallback_password(mut self, password: Option<Secret>) -> Self {
        if self.password.is_none() {
            self.password = password;
        }
        self
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, db: &str) -> PgUrl {
        let mut u = self.clone();
        u.config.dbname(db);
        u
    }

    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }

    pub fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or_default()
    }

    /// The first host (what messages name).
    pub fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        }
    }

    pub fn port(&self) -> u16 {
        self.config.get_ports().first().copied().unwrap_or(5432)
    }

    /// The URL without password and parameters: safe for logs, reports and `--json`.
    pub fn redacted(&self) -> String {
        let host = self.host();
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        format!(
            "postgres://{}@{}:{}/{}",
            self.user(),
            host,
            self.port(),
            self.database()
        )
    }

    /// Connects; the connection task runs on the runtime until the client is dropped.
    pub async fn connect(&self) -> Result<Client> {
        let tls = tls::client_config(self.ssl_mode, self.root_cert.as_ref())?;
        let mut cfg = self.config.clone();
        cfg.application_name("amlmigrate")
            .ssl_mode(self.ssl_mode.negotiation());
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(20));
        }
        if let Some(p) = &self.password {
            cfg.password(p.expose());
        }
        let client = match tls {
            None => {
                let (client, connection) = cfg
                    .connect(NoTls)
                    .await
                    .map_err(|e| self.connect_error(&e))?;
                tokio::spawn(drive(connection));
                client
            }
            Some(tls) => {
                let (client, connection) = cfg
                    .connect(MakeRustlsConnect::new(tls))
                    .await
                    .map_err(|e| self.connect_error(&e))?;
                tokio::spawn(drive(connection));
                client
            }
        };
        Ok(client)
    }

    fn connect_error(&self, e: &tokio_postgres::Error) -> Error {
        let server = self.redacted();
        if let Some(why) = tls::explain(e, &self.host(), self.ssl_mode, self.root_cert.as_ref()) {
            return Error::Connection(format!(
                "cannot connect to PostgreSQL at {server} over TLS: {why}"
            ));
        }
        let detail = e
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_else(|| crate::error::chain_text(e));
        let code = e.as_db_error().map(|d| d.code().code());
        let hint = match code {
            Some("28000") if detail.contains("no encryption") => {
                " (the server accepts only TLS connections from here: add \
                 ?sslmode=verify-full&sslrootcert=FILE with the CA that signed its certificate)"
            }
            Some("28P01") | Some("28000") => {
                " (check the user and password: --pg-password-file, PGPASSWORD or the URL)"
            }
            Some("3D000") => " (create the database first: CREATE DATABASE …)",
            _ => " (check the host and port and that the server is running)",
        };
        Error::Connection(format!(
            "cannot connect to PostgreSQL at {server}: {detail}{hint}"
        ))
    }
}

/// Runs a connection until its client is dropped.
async fn drive<F: std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>>(
    connection: F,
) {
    if let Err(e) = connection.await {
        tracing::warn!("PostgreSQL connection closed: {e}");
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
        assert_eq!(u.ssl_mode, SslMode::Prefer, "libpq's default");
        assert!(
            u.config.get_password().is_none(),
            "the driver gets it only to connect"
        );
        let u = PgUrl::parse("postgresql://pg/db").unwrap();
        assert_eq!((u.user(), u.port(), u.database()), ("postgres", 5432, "db"));
        let e = PgUrl::parse("postgres://u:topsecret@h:bad/db")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("topsecret"), "{e}");
        assert!(PgUrl::parse("postgres://h").is_err());
        for bad in [
            "u:topsecret@h/db",
            "postgres://u@h/db?password=topsecret",
            "postgres://u:12#topsecret@h/db",
            "postgres://u:top?secret@h/db",
            "postgres://u:topsecret",
            "mysql://u:topsecret@h/db",
        ] {
            let e = PgUrl::parse(bad).unwrap_err().to_string();
            assert!(
                !e.contains("topsecret") && !e.contains("secret@"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn ssl_parameters_have_libpq_meaning_and_others_go_to_the_driver() {
        let u = PgUrl::parse(
            "postgres://u@db.example/mlflow?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=7",
        )
        .unwrap();
        assert_eq!(u.ssl_mode, SslMode::VerifyFull);
        assert_eq!(u.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        assert_eq!(
            u.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(7))
        );
        assert_eq!(u.redacted(), "postgres://u@db.example:5432/mlflow");
        let e = PgUrl::parse("postgres://u@h/db?sslmode=verify_full").unwrap_err();
        assert!(e.to_string().contains("verify-full"), "{e}");
        let e = PgUrl::parse("postgres://u@h/db?sslcert=c.pem").unwrap_err();
        assert!(e.to_string().contains("client certificates"), "{e}");
        let e = PgUrl::parse("postgres://u@h/db?bogus=1").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn copy_text_escapes_delimiters() {
        let mut out = Vec::new();
        copy_escape_into(&mut out, b"a\tb\nc\\d\re");
        assert_eq!(out, b"a\\tb\\nc\\\\d\\re");
    }
}
