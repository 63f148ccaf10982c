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

    #[error("MySQL error while {context}: {source}")]
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

    #[error("{context}: {source}")]
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
            Error::Store { .. } => ErrorKind::Connection,
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

/// Adds "while doing X" context to MySQL results.
pub trait MysqlContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> MysqlContext<T> for std::result::Result<T, mysql_async::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::mysql(context(), e))
    }
}
