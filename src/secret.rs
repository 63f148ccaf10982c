//! Secrets that cannot leak by accident: their `Debug` and `Display` never show the value, and
//! the memory that held them is zeroed when they are dropped (`secrecy` / `zeroize`).
//!
//! Drivers keep their own copies of what they are given (mysql_async's options, tokio-postgres'
//! config); those are theirs to keep and drop. Everything this crate holds is a [`Secret`].

use std::fmt;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

#[derive(Clone, Default)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let mut value: String = value.into();
        // Copied into an allocation of exactly its length, and the original zeroed over its
        // whole capacity: `String::into_boxed_str` would reallocate and leave the first copy.
        let secret = SecretString::from(value.as_str());
        value.zeroize();
        Secret(secret)
    }

    /// The only way to read the value; grep for it when auditing where secrets go.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

// The value lives in a `SecretString`, which zeroes it on drop: so does a `Secret`.
impl zeroize::ZeroizeOnDrop for Secret {}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Reads a password from a file: the whole file but a trailing newline (`\n` or `\r\n`), as
/// `echo pw > file` and Kubernetes Secret volumes write it. An empty file is an error, not an
/// empty password. The bytes read are zeroed once copied into the [`Secret`].
pub fn read_file(path: &Path) -> Result<Secret> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        Error::input(format!(
            "cannot read the password file {}: {e}",
            path.display()
        ))
    })?);
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let text = std::str::from_utf8(&bytes[..end]).map_err(|_| {
        Error::input(format!(
            "the password file {} is not UTF-8 text",
            path.display()
        ))
    })?;
    if text.is_empty() {
        return Err(Error::input(format!(
            "the password file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(text))
}

/// A password from `file` when one is given, else from the environment variable `env` (unset
/// or empty: none). Every command's `--…-password-file` flag and config file goes through here.
pub fn password_from(file: Option<&Path>, env: &str) -> Result<Option<Secret>> {
    match file {
        Some(f) => read_file(f).map(Some),
        None => Ok(std::env::var(env)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret::new)),
    }
}

/// The file's permission bits when users other than its owner can read it (a key or password
/// file that should be `chmod 600`); `None` when only the owner can, or on other systems.
pub fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// A connection URL with any password removed (`scheme://user:pw@host` → `scheme://user@host`),
/// for messages about URLs that could not be parsed.
pub fn redact_url(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let user = s[scheme_end + 3..at].split(':').next().unwrap_or("");
            format!("{}{}@{}", &s[..scheme_end + 3], user, &s[at + 1..])
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s} {s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(s.clone(), s);
    }

    #[test]
    fn secrets_zero_their_memory_on_drop() {
        // Checked by the compiler: the value is held by a type that zeroes it when dropped
        // (reading freed memory to see it would be undefined behaviour).
        fn zeroed_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroed_on_drop::<SecretString>();
        zeroed_on_drop::<Secret>();
    }

    #[test]
    fn password_files_lose_their_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, " pa ss\r\n").unwrap();
        assert_eq!(read_file(&f).unwrap().expose(), " pa ss");
        std::fs::write(&f, "\n").unwrap();
        assert!(read_file(&f).unwrap_err().to_string().contains("empty"));
        let missing = dir.path().join("missing");
        let e = read_file(&missing).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Input);
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn files_readable_by_others_are_noticed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(readable_by_others(&f), Some(0o644));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(readable_by_others(&f), None);
    }

    #[test]
    fn redacted_urls_keep_the_user_but_not_the_password() {
        assert_eq!(redact_url("mysql://root:pw@h:1/db"), "mysql://root@h:1/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
