//! The library's error type. Every message says what failed, on which object, and what to do.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Broad classes of failure; the CLI maps each to an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input from the operator: a malformed URL, an unknown database, an unknown snapshot.
    Input,
    /// A server or store could not be reached or refused us.
    Connection,
    /// Stored data is damaged or does not match its manifest.
    Damaged,
    /// The operation was refused to protect data (for example a non-empty restore target).
    Refused,
    /// Ctrl-C or a termination signal stopped the work.
    Interrupted,
    /// The server understood us but the credentials lack a permission (RBAC 403).
    Forbidden,
    /// A snapshot is unsigned or badly signed where a signature is required.
    Untrusted,
    /// Anything else.
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Input(String),

    #[error("{0}")]
    Connection(String),

    #[error("part {part}: entry {entry}: {detail}")]
    Damaged {
        part: String,
        entry: String,
        detail: String,
    },

    #[error("{0}")]
    Refused(String),

    #[error("interrupted: {0}")]
    Interrupted(String),

    #[error("{0}")]
    Forbidden(String),

    #[error("{0}")]
    Untrusted(String),

    #[error(
        "MySQL error while {context}: {source}{}",
        lost_connection_hint(source)
    )]
    Mysql {
        context: String,
        #[source]
        source: mysql_async::Error,
    },

    #[error("repository {repo}: {context}: {source}")]
    Store {
        repo: String,
        context: String,
        #[source]
        source: object_store::Error,
    },

    #[error("{context}: {source}{}", disk_full_hint(source))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Input(_) => ErrorKind::Input,
            Error::Connection(_) => ErrorKind::Connection,
            Error::Damaged { .. } => ErrorKind::Damaged,
            Error::Refused(_) => ErrorKind::Refused,
            Error::Interrupted(_) => ErrorKind::Interrupted,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Untrusted(_) => ErrorKind::Untrusted,
            Error::Store { .. } => ErrorKind::Connection,
            // The connection broke under the work (killed, timed out, server restarted).
            Error::Mysql {
                source: mysql_async::Error::Io(_),
                ..
            } => ErrorKind::Connection,
            Error::Mysql { .. } | Error::Io { .. } | Error::Other(_) => ErrorKind::Other,
        }
    }

    pub fn input(msg: impl fmt::Display) -> Self {
        Error::Input(msg.to_string())
    }

    pub fn other(msg: impl fmt::Display) -> Self {
        Error::Other(msg.to_string())
    }

    pub fn mysql(context: impl fmt::Display, source: mysql_async::Error) -> Self {
        Error::Mysql {
            context: context.to_string(),
            source,
        }
    }

    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }

    pub fn damaged(
        part: impl fmt::Display,
        entry: impl fmt::Display,
        detail: impl fmt::Display,
    ) -> Self {
        Error::Damaged {
            part: part.to_string(),
            entry: entry.to_string(),
            detail: detail.to_string(),
        }
    }
}

fn lost_connection_hint(e: &mysql_async::Error) -> &'static str {
    // Where a killed connection's stream ends decides how it is reported: mid-packet an I/O
    // error, on a packet boundary a closed connection, and a server that could still write
    // says "Connection was killed" (MariaDB 1927) or "Server shutdown in progress" (1053).
    let lost = match e {
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => true,
        mysql_async::Error::Server(s) => matches!(s.code, 1927 | 1053),
        _ => false,
    };
    if lost {
        " (the connection to the server was lost: killed, timed out or the server restarted; \
         check the server, then run the command again)"
    } else {
        ""
    }
}

fn disk_full_hint(e: &std::io::Error) -> &'static str {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = next {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
        {
            return " (the disk is full: free space there, then run the command again)";
        }
        next = cause.source();
    }
    ""
}

/// An error and its causes as one line, `outer: cause: root cause`, each cause said once.
///
/// Library errors show their source in their own text (so `to_string()` is whole), and
/// `std::io::Error`, `object_store` and `mysql_async` wrap and repeat each other; printed as a
/// plain chain, one lost connection read "Input/output error: Input/output error: …" four times.
/// A cause whose text the line already holds adds nothing and is left out, and so does a
/// segment that only repeats the one before it (`Input/output error: Input/output error: …`).
pub fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        let text = text.trim();
        if !text.is_empty() && !out.contains(text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(text);
        }
        next = e.source();
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in out.split(": ") {
        if segments.last() != Some(&seg) {
            segments.push(seg);
        }
    }
    segments.join(": ")
}

/// Adds "while doing X" context to MySQL results.
pub trait MysqlContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> MysqlContext<T> for std::result::Result<T, mysql_async::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::mysql(context(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(String, Option<Box<dyn std::error::Error + Send + Sync>>);

    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        // The shape object_store gives a full disk: every layer repeats the one below.
        let disk = std::io::Error::from_raw_os_error(28);
        let copy = Wrap(
            format!("Unable to copy data to file: {disk}"),
            Some(Box::new(disk)),
        );
        let generic = Wrap(
            format!("Generic LocalFileSystem error: {copy}"),
            Some(Box::new(copy)),
        );
        let lib = Error::io(
            "writing the part to the repository",
            std::io::Error::other(generic),
        );
        let top = anyhow::Error::new(lib).context("backup of mysql://root@h:3306 into /r");
        let text = chain_text(top.as_ref());
        assert_eq!(text.matches("No space left on device").count(), 1, "{text}");
        assert!(
            text.starts_with("backup of mysql://root@h:3306 into /r: writing the part to the repository: Generic LocalFileSystem error"),
            "{text}"
        );
    }

    #[test]
    fn a_segment_said_twice_in_a_row_is_said_once() {
        let e = Wrap(
            "MySQL error while reading rows: Input/output error: Input/output error: bytes remaining on stream".into(),
            Some(Box::new(Wrap("Input/output error: bytes remaining on stream".into(), None))),
        );
        assert_eq!(
            chain_text(&e),
            "MySQL error while reading rows: Input/output error: bytes remaining on stream"
        );
    }

    #[test]
    fn causes_that_add_something_are_kept() {
        let inner = Wrap("access denied for user root".into(), None);
        let outer = Wrap("connecting to mysql://root@h".into(), Some(Box::new(inner)));
        assert_eq!(
            chain_text(&outer),
            "connecting to mysql://root@h: access denied for user root"
        );
    }
}
