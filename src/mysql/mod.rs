//! MySQL / MariaDB source and sink: the schema, rows as `LOAD DATA` chunks, restores.

pub mod backup;
pub mod catalog;
pub mod collation;
pub mod context;
pub mod restore;
pub mod sqlparse;

pub mod sqltext;
pub mod tsv;
pub mod url;

use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::error::{Error, Result};
pub use url::MysqlUrl;

/// Databases that belong to the server itself and are never backed up by default.
pub const SYSTEM_DATABASES: &[&str] = &["information_schema", "performance_schema", "mysql", "sys"];

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Connects, turning the driver's errors into ones that say what to check.
pub async fn connect(url: &MysqlUrl) -> Result<Conn> {
    let target = url.redacted();
    let attempt = Conn::new(url.opts());
    let conn = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Err(_) => {
            return Err(Error::Connection(format!(
                "timed out after {}s connecting to MySQL at {target}: check the host, port and firewall",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
        Ok(r) => r,
    };
    conn.map_err(|e| connect_error(&target, &url.user, e))
}

fn connect_error(target: &str, user: &str, e: mysql_async::Error) -> Error {
    match e {
        mysql_async::Error::Server(ref s) if s.code == 1045 || s.code == 1698 => {
            Error::Connection(format!(
                "MySQL at {target} refused user '{user}': access denied ({}). Check the password \
                 (in the URL, --mysql-password-file or AMLMIGRATE_MYSQL_PASSWORD); a server that only \
                 accepts TLS also answers this way: add ?ssl-mode=verify-identity&ssl-ca=FILE (the CA \
                 that signed its certificate)",
                s.message
            ))
        }
        mysql_async::Error::Server(ref s) if s.code == 3159 => Error::Connection(format!(
            "MySQL at {target} accepts only TLS connections: add ?ssl-mode=verify-identity&ssl-ca=FILE \
             (the CA that signed its certificate) to the URL"
        )),
        mysql_async::Error::Server(ref s) if s.code == 1049 => Error::input(format!(
            "MySQL at {target}: database does not exist ({})",
            s.message
        )),
        mysql_async::Error::Io(ref io) if io.to_string().contains("certificate") => {
            Error::Connection(format!(
                "TLS to MySQL at {target} failed: {io}. Give the CA that signed the server's \
                 certificate with ssl-ca=FILE in the URL (with ssl-mode=verify-identity), and \
                 connect with a host name the certificate holds"
            ))
        }
        mysql_async::Error::Io(ref io) => Error::Connection(format!(
            "cannot connect to MySQL at {target}: {io}. Check the host and port and that the server is running"
        )),
        other => Error::Connection(format!("cannot connect to MySQL at {target}: {other}")),
    }
}

/// `VERSION()` of the server, for the manifest and messages.
pub async fn server_version(conn: &mut Conn) -> Result<String> {
    let v: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| Error::mysql("reading the server version", e))?;
    Ok(v.unwrap_or_default())
}

/// Reads a column that may come back as bytes in any character set as UTF-8 text.
pub(crate) fn text(row: &mysql_async::Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}
