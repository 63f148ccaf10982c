//! Secrets never reach a snapshot in clear: each one is encrypted to the operator's age
//! recipients (X25519, `age1…`) and stored as `<name>.yaml.age`; without a recipient it is
//! left out and the manifest says so. Restore decrypts with an age identity file.

use std::path::Path;

use crate::error::{Error, Result};
use crate::repo::crypt::{age_decrypt, age_encrypt, parse_age_recipients};

#[derive(Clone)]
pub struct Recipients(Vec<age::x25519::Recipient>);

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipients({})", self.0.len())
    }
}

impl Recipients {
    /// Parses the `--encrypt-to` keys, as a repository parses its recipients.
    pub fn parse<S: AsRef<str>>(keys: &[S]) -> Result<Recipients> {
        parse_age_recipients(keys, "--encrypt-to").map(Recipients)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>> {
        age_encrypt(
            self.0.iter().map(|r| r as &dyn age::Recipient),
            plain,
            "encrypting a secret",
            "encrypting a secret",
        )
    }
}

pub struct Identities(Vec<Box<dyn age::Identity + Send + Sync>>);

impl Identities {
    pub fn load(path: &Path) -> Result<Identities> {
        let file = age::IdentityFile::from_file(path.display().to_string()).map_err(|e| {
            Error::input(format!(
                "--identity {}: cannot read an age identity file: {e}",
                path.display()
            ))
        })?;
        let ids = file
            .into_identities()
            .map_err(|e| Error::input(format!("--identity {}: {e}", path.display())))?;
        Ok(Identities(ids))
    }

    pub fn decrypt(&self, cipher: &[u8], what: &str) -> Result<Vec<u8>> {
        let mut plain = age_decrypt(
            self.0.iter().map(|i| i.as_ref() as &dyn age::Identity),
            cipher,
            "kubernetes",
            what,
            "give the identity whose recipient the backup used (--identity FILE)",
        )?;
        Ok(std::mem::take(&mut *plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn secret_round_trips_through_age_and_rejects_the_wrong_identity() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let r = Recipients::parse(&[id.to_public().to_string()]).unwrap();
        let c = r.encrypt(b"password: hunter2").unwrap();
        assert!(!c.windows(7).any(|w| w == b"hunter2"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key.txt");
        std::fs::write(&f, format!("# test\n{}\n", id.to_string().expose_secret())).unwrap();
        let ids = Identities::load(&f).unwrap();
        assert_eq!(ids.decrypt(&c, "s").unwrap(), b"password: hunter2");
        let f2 = dir.path().join("other.txt");
        std::fs::write(&f2, format!("{}\n", other.to_string().expose_secret())).unwrap();
        let err = Identities::load(&f2)
            .unwrap()
            .decrypt(&c, "s")
            .err()
            .unwrap();
        assert!(err.to_string().contains("--identity"), "{err}");
    }

    #[test]
    fn bad_recipient_is_named() {
        let err = Recipients::parse(&["age1nope"]).unwrap_err();
        assert!(err.to_string().contains("age1nope"), "{err}");
    }
}
