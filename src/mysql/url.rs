//! `mysql://user[:password]@host[:port][/db][?ssl-mode=…]` connection URLs. The password is a
//! [`Secret`]: `Display` and `Debug` print the URL without it.

use std::fmt;
use std::path::PathBuf;

use mysql_async::{OptsBuilder, SslOpts};

use crate::error::{Error, Result};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP (the default, as for the `mysql` client on loopback).
    #[default]
    Disabled,
    /// Encrypt, but accept any server certificate.
    Required,
    /// Encrypt and check the certificate chain and host name: against `ssl-ca` alone when it
    /// is given, else against the built-in public roots.
    VerifyIdentity,
}

#[derive(Clone, PartialEq, Eq)]
pub struct MysqlUrl {
    pub user: String,
    pub password: Option<Secret>,
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub ssl_mode: SslMode,
    pub ssl_ca: Option<PathBuf>,
}

impl MysqlUrl {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::input(format!(
                "invalid MySQL URL {}: {why}; expected mysql://user[:password]@host[:port][/database]",
                crate::secret::redact_url(s)
            ))
        };
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "mysql" | "mariadb") {
            return Err(bad(&format!("scheme {} is not mysql://", url.scheme())));
        }
        if url.fragment().is_some() {
            // `mysql://root:12#…@h` parses as host `root`, port 12: never guess what was meant.
            return Err(bad("a # starts a fragment; write # in a password as %23"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let user = decode(url.username());
        let user = if user.is_empty() {
            "root".to_string()
        } else {
            user
        };
        let password = url.password().map(|p| Secret::new(decode(p)));
        let database = url
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|d| !d.is_empty())
            .map(decode);
        let mut out = MysqlUrl {
            user,
            password,
            host,
            port: url.port().unwrap_or(3306),
            database,
            ssl_mode: SslMode::Disabled,
            ssl_ca: None,
        };
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "ssl-mode" | "sslmode" => {
                    out.ssl_mode = match v.to_ascii_lowercase().replace('-', "_").as_str() {
                        "disabled" | "disable" => SslMode::Disabled,
                        "required" | "require" | "preferred" => SslMode::Required,
                        "verify_identity" | "verify_ca" | "verify_full" => SslMode::VerifyIdentity,
                        other => return Err(bad(&format!("unknown ssl-mode {other}"))),
                    }
                }
                "ssl-ca" | "sslrootcert" => {
                    out.ssl_ca = Some(PathBuf::from(v.as_ref()));
                    if out.ssl_mode == SslMode::Disabled {
                        out.ssl_mode = SslMode::VerifyIdentity;
                    }
                }
                other => return Err(bad(&format!("unknown parameter {other}"))),
            }
        }
        Ok(out)
    }

    /// Sets the password unless the URL carried one.
    pub fn with_fallback_password(mut self, password: Option<Secret>) -> Self {
        if self.password.is_none() {
            self.password = password;
        }
        self
    }

    /// The URL without password and parameters: safe for logs, manifests and `--json`.
    pub fn redacted(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let mut s = format!("mysql://{}@{}:{}", self.user, host, self.port);
        if let Some(db) = &self.database {
            s.push('/');
            s.push_str(db);
        }
        s
    }

    pub fn opts(&self) -> OptsBuilder {
        let mut b = OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(self.password.as_ref().map(|p| p.expose().to_string()))
            .prefer_socket(false)
            .tcp_nodelay(true)
            .stmt_cache_size(16);
        match self.ssl_mode {
            SslMode::Disabled => {}
            SslMode::Required => {
                b = b.ssl_opts(
                    SslOpts::default()
                        .with_danger_accept_invalid_certs(true)
                        .with_danger_skip_domain_validation(true),
                )
            }
            SslMode::VerifyIdentity => {
                let mut ssl = SslOpts::default();
                if let Some(ca) = &self.ssl_ca {
                    // The given CA replaces the built-in public roots: a private server's
                    // certificate must come from its own CA, not from any public one.
                    ssl = ssl
                        .with_root_certs(vec![ca.clone().into()])
                        .with_disable_built_in_roots(true);
                }
                b = b.ssl_opts(ssl)
            }
        }
        b
    }
}

impl fmt::Display for MysqlUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for MysqlUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MysqlUrl({})", self.redacted())
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_password_host_port_and_database() {
        let u = MysqlUrl::parse("mysql://aml:p%40ss%3Aword@db.example:3307/aml").unwrap();
        assert_eq!(u.user, "aml");
        assert_eq!(u.password.as_ref().unwrap().expose(), "p@ss:word");
        assert_eq!(u.host, "db.example");
        assert_eq!(u.port, 3307);
        assert_eq!(u.database.as_deref(), Some("aml"));
        assert_eq!(u.redacted(), "mysql://aml@db.example:3307/aml");
    }

    #[test]
    fn defaults_to_root_and_port_3306() {
        let u = MysqlUrl::parse("mysql://127.0.0.1").unwrap();
        assert_eq!((u.user.as_str(), u.port, u.database), ("root", 3306, None));
    }

    #[test]
    fn password_never_appears_in_display_debug_or_errors() {
        let u = MysqlUrl::parse("mysql://root:topsecret@h/db").unwrap();
        assert!(!format!("{u} {u:?}").contains("topsecret"));
        let err = MysqlUrl::parse("mysql://root:topsecret@h:notaport/db").unwrap_err();
        assert!(!err.to_string().contains("topsecret"), "{err}");
        for bad in [
            "postgres://root:topsecret@h/db",
            "root:topsecret@h:3306",
            "mysql:/root:topsecret@h",
            "mysql://root:12#topsecret@h",
            "mysql://root:top/secret@h/db",
            "mysql://root:topsecret",
            "mysql://h/db?password=topsecret",
        ] {
            let err = MysqlUrl::parse(bad).unwrap_err();
            let text = err.to_string();
            assert!(
                !text.contains("topsecret") && !text.contains("secret@"),
                "{bad}: {text}"
            );
        }
    }

    #[test]
    fn url_password_wins_over_fallback() {
        let u = MysqlUrl::parse("mysql://root:a@h").unwrap();
        let u = u.with_fallback_password(Some(Secret::new("b")));
        assert_eq!(u.password.unwrap().expose(), "a");
        let u = MysqlUrl::parse("mysql://root@h").unwrap();
        let u = u.with_fallback_password(Some(Secret::new("b")));
        assert_eq!(u.password.unwrap().expose(), "b");
    }

    #[test]
    fn ssl_ca_replaces_the_built_in_roots() {
        let opts = |u: &str| mysql_async::Opts::from(MysqlUrl::parse(u).unwrap().opts());
        let with_ca = opts("mysql://h?ssl-mode=verify-identity&ssl-ca=/etc/ca.pem");
        let ssl = with_ca.ssl_opts().unwrap();
        assert!(ssl.disable_built_in_roots());
        assert_eq!(ssl.root_certs().len(), 1);
        assert!(!ssl.skip_domain_validation() && !ssl.accept_invalid_certs());
        let public = opts("mysql://h?ssl-mode=verify-identity");
        assert!(!public.ssl_opts().unwrap().disable_built_in_roots());
    }

    #[test]
    fn ssl_mode_parameters() {
        let u = MysqlUrl::parse("mysql://h?ssl-mode=REQUIRED").unwrap();
        assert_eq!(u.ssl_mode, SslMode::Required);
        assert!(MysqlUrl::parse("mysql://h?bogus=1").is_err());
    }
}
