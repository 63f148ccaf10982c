//! Secrets that cannot leak by accident: their `Debug` and `Display` never show the value.

use std::fmt;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The only way to read the value; grep for it when auditing where secrets go.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

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
    }

    #[test]
    fn redacted_urls_keep_the_user_but_not_the_password() {
        assert_eq!(redact_url("mysql://root:pw@h:1/db"), "mysql://root@h:1/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
