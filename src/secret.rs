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

/// Reads a password from a file, for every command and the upgrade configuration alike: the
/// whole file but a trailing newline (`\n` or `\r\n`), as `echo pw > file` and Kubernetes
/// Secret volumes write it. `source` names where the path came from (`--pg-password-file`,
/// `[postgres] password_file`) in messages.
///
/// An empty file is refused (an input error, never an empty password: a Secret volume whose key
/// is missing must not log in as nobody). A file that users other than its owner can read is
/// read, with a warning naming the fix: refusing it would stop a CronJob whose Secret volume
/// has the default mode 0644 without protecting a password that is already exposed. The mode is
/// that of the file actually read (fstat of the open file, after symlinks, as Secret volumes
/// use). The bytes read are zeroed once copied into the [`Secret`].
pub fn read_password_file(path: &Path, source: &str) -> Result<Secret> {
    use std::io::Read;
    let named = |what: String| Error::input(format!("{source} {}: {what}", path.display()));
    let mut file = std::fs::File::open(path)
        .map_err(|e| named(format!("cannot read the password file: {e}")))?;
    if let Some(mode) = file
        .metadata()
        .ok()
        .and_then(|m| mode_readable_by_others(&m))
        && first_warning_for(path)
    {
        tracing::warn!(
            "{source} {} can be read by other users (mode {mode:04o}); restrict it: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes)
        .map_err(|e| named(format!("cannot read the password file: {e}")))?;
    let mut end = bytes.len();
    while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let text = std::str::from_utf8(&bytes[..end])
        .map_err(|_| named("the password file is not UTF-8 text".into()))?;
    if text.is_empty() {
        return Err(named(
            "the password file is empty; write the password into it (a trailing newline is ignored)"
                .into(),
        ));
    }
    Ok(Secret::new(text))
}

/// Whether `path` drew no warning yet in this process: the upgrade reads a source's password
/// at several steps, and one warning per file says it.
fn first_warning_for(path: &Path) -> bool {
    static WARNED: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned.iter().any(|p| p == path) {
        return false;
    }
    warned.push(path.to_path_buf());
    true
}

/// A password from `file` when one is given (through [`read_password_file`], `source` naming
/// the flag or setting), else from the environment variable `env` (unset or empty: none).
pub fn password_from(file: Option<&Path>, source: &str, env: &str) -> Result<Option<Secret>> {
    match file {
        Some(f) => read_password_file(f, source).map(Some),
        None if env.is_empty() => Ok(None),
        None => Ok(std::env::var(env)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret::new)),
    }
}

/// The file's permission bits when users other than its owner can read it (a key or password
/// file that should be `chmod 600`); `None` when only the owner can, or on other systems.
pub fn readable_by_others(path: &Path) -> Option<u32> {
    mode_readable_by_others(&std::fs::metadata(path).ok()?)
}

fn mode_readable_by_others(meta: &std::fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// A URL-like value with everything that may be a credential left out, for messages about
/// values that could not be parsed, whatever their shape: the user-info's password (up to the
/// last `@`, so an unencoded `@`, `/` or `#` in a password does not end it early), the query
/// and fragment (libpq's `?password=`), and a "port" that is not a number when there is no `@`
/// (`mysql://root:pw` that lost its `@host`). When a query or fragment holds an `@`, where the
/// user-info ends cannot be told, and only the scheme and user are kept.
pub fn redact_url(s: &str) -> String {
    let (prefix, rest) = match s.find("://") {
        Some(i)
            if i > 0
                && s[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            s.split_at(i + 3)
        }
        _ => ("", s),
    };
    let user_of = |info: &str| {
        let u = info.split([':', '@', '/', '?', '#']).next().unwrap_or("");
        if u.is_empty() {
            String::new()
        } else {
            format!("{u}@")
        }
    };
    let (head, tail) = rest.split_at(rest.find(['?', '#']).unwrap_or(rest.len()));
    if tail.contains('@') {
        return format!("{prefix}{}…", user_of(head));
    }
    let (user, host_path) = match head.rfind('@') {
        Some(at) => (user_of(&head[..at]), &head[at + 1..]),
        None => (String::new(), head),
    };
    let (host_port, path) = host_path.split_at(host_path.find('/').unwrap_or(host_path.len()));
    let host_port = match host_port.rfind(':') {
        Some(c)
            if user.is_empty()
                && !host_port[c..].contains(']')
                && !host_port[c + 1..].chars().all(|d| d.is_ascii_digit()) =>
        {
            format!("{}:***", &host_port[..c])
        }
        _ => host_port.to_string(),
    };
    let query = if tail.is_empty() { "" } else { "?…" };
    format!("{prefix}{user}{host_port}{path}{query}")
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
        assert_eq!(read_password_file(&f, "--x").unwrap().expose(), " pa ss");
        std::fs::write(&f, "\n").unwrap();
        let e = read_password_file(&f, "--x-password-file").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Input);
        assert!(e.to_string().contains("--x-password-file") && e.to_string().contains("empty"));
        let missing = dir.path().join("missing");
        let e = read_password_file(&missing, "--x").unwrap_err();
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
        assert_eq!(redact_url("mysql://[::1]:3306/db"), "mysql://[::1]:3306/db");
    }

    #[test]
    fn no_malformed_url_shows_its_password() {
        // (input, what is shown): the password is "pw…" or "p…w" in each.
        for (input, shown) in [
            ("root:pwX1@host:3306", "root@host:3306"),
            ("mysql:/root:pwX1@h/db", "mysql@h/db"),
            ("mysql://root:p@wX1/x@h/db", "mysql://root@h/db"),
            (
                "mysql://root:pwX1@h:notaport/db",
                "mysql://root@h:notaport/db",
            ),
            ("mysql://root:pwX1", "mysql://root:***"),
            ("mysql://root:pwX1/db", "mysql://root:***/db"),
            ("mysql://root:12#pwX1@h", "mysql://root@…"),
            ("mysql://root:p?wX1@h", "mysql://root@…"),
            ("postgres://u@h/db?password=pwX1", "postgres://u@h/db?…"),
            ("postgres://u@h/db?password=p@wX1", "postgres://u@…"),
            ("http://AK:pwX1@[::1]:x", "http://AK@[::1]:x"),
            ("http://:pwX1@h", "http://h"),
        ] {
            let got = redact_url(input);
            assert_eq!(got, shown, "{input}");
            assert!(
                !got.contains("pw") && !got.contains("wX1"),
                "{input} -> {got}"
            );
        }
    }
}
