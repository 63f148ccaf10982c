//! Encryption of a repository to age recipients, so that a backup (and the in-cluster CronJob)
//! needs only public recipients and cannot read what earlier backups stored.
//!
//! - Each pack has its own random 256-bit key; chunks are sealed with ChaCha20-Poly1305 under
//!   it (the nonce is the chunk's offset in the pack, unique within a pack). The pack key is
//!   stored in the index only age-encrypted to the recipients.
//! - Manifests are age-encrypted whole.
//! - Chunk ids are HMAC-SHA256 under a key derived from the recipients and a random salt kept
//!   in the repository marker, so a reader of the bucket cannot test a guess of the content.
//!   Anyone who knows the recipients can; treat them like the cluster's other configuration.
//!   Readers get the same key from the marker, where it is stored age-encrypted.
//! - The marker holds the salt and a check value (an HMAC, not the recipients), so a backup given
//!   other recipients is refused instead of silently deduplicating nothing.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::str::FromStr;
use std::sync::Mutex;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::chunker::hmac_sha256;
use crate::error::{Error, Result};

/// What the repository marker says about encryption. Nothing in it is secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncryptionConfig {
    /// `age-x25519`.
    pub scheme: String,
    /// Random, hex: input of the chunk-id key.
    pub salt: String,
    /// HMAC of a fixed text under the chunk-id key, hex.
    pub check: String,
    /// The chunk-id key, age-encrypted to the recipients (base64), for readers.
    pub key: String,
}

/// A repository's encryption as a backup or reader holds it.
pub struct Encryption {
    pub id_key: [u8; 32],
    pub recipients: Vec<age::x25519::Recipient>,
    pub identities: Vec<age::x25519::Identity>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Encryption({} recipients, {} identities)",
            self.recipients.len(),
            self.identities.len()
        )
    }
}

const CHECK_TEXT: &[u8] = b"amlmigrate repository recipients";

fn id_key(salt: &[u8; 32], recipients: &[age::x25519::Recipient]) -> [u8; 32] {
    let mut names: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    names.sort();
    names.dedup();
    hmac_sha256(salt, names.join("\n").as_bytes())
}

pub fn parse_recipients<S: AsRef<str>>(keys: &[S]) -> Result<Vec<age::x25519::Recipient>> {
    parse_age_recipients(keys, "recipient")
}

/// Parses `age1…` public keys, one per item; blank items and `#` lines are skipped, so a
/// recipients file can be passed line by line. `label` is how the user gave them (an option,
/// a configuration key) and heads the error about a bad one.
pub fn parse_age_recipients<S: AsRef<str>>(
    keys: &[S],
    label: &str,
) -> Result<Vec<age::x25519::Recipient>> {
    let mut out = Vec::new();
    for k in keys {
        let k = k.as_ref().trim();
        if k.is_empty() || k.starts_with('#') {
            continue;
        }
        out.push(age::x25519::Recipient::from_str(k).map_err(|e| {
            Error::input(format!(
                "{label} {k}: not an age X25519 recipient ({e}); it starts with age1 (make one with age-keygen)"
            ))
        })?);
    }
    Ok(out)
}

/// Reads X25519 identities (`AGE-SECRET-KEY-1…` lines) from an age identity file.
pub fn load_identities(path: &std::path::Path) -> Result<Vec<age::x25519::Identity>> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        Error::io(
            format!("reading the identity file {} (--identity)", path.display()),
            e,
        )
    })?);
    let ids: Vec<age::x25519::Identity> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .filter_map(|l| age::x25519::Identity::from_str(l).ok())
        .collect();
    if ids.is_empty() {
        return Err(Error::input(format!(
            "--identity {}: no age X25519 identity (AGE-SECRET-KEY-1…) in it; give the file age-keygen wrote",
            path.display()
        )));
    }
    Ok(ids)
}

impl EncryptionConfig {
    pub fn new(recipients: &[age::x25519::Recipient]) -> Result<Self> {
        let mut salt = [0u8; 32];
        rand::fill(&mut salt);
        let key = id_key(&salt, recipients);
        let holder = Encryption {
            id_key: key,
            recipients: recipients.to_vec(),
            identities: Vec::new(),
        };
        let wrapped = holder.age_encrypt(&key)?;
        Ok(EncryptionConfig {
            scheme: "age-x25519".into(),
            salt: hex::encode(salt),
            check: hex::encode(hmac_sha256(&key, CHECK_TEXT)),
            key: base64::engine::general_purpose::STANDARD.encode(wrapped),
        })
    }

    /// The repository's encryption for these recipients (a backup) or identities (a reader).
    pub fn open(
        &self,
        location: &str,
        recipients: Vec<age::x25519::Recipient>,
        identities: Vec<age::x25519::Identity>,
    ) -> Result<Encryption> {
        let salt: [u8; 32] = hex::decode(&self.salt)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                Error::input(format!(
                    "{location}: the marker's encryption salt is not valid"
                ))
            })?;
        let key = if !recipients.is_empty() {
            id_key(&salt, &recipients)
        } else if !identities.is_empty() {
            let reader = Encryption {
                id_key: [0; 32],
                recipients: Vec::new(),
                identities: identities.clone(),
            };
            let cipher = base64::engine::general_purpose::STANDARD
                .decode(&self.key)
                .map_err(|e| {
                    Error::input(format!("{location}: the marker's key is not base64 ({e})"))
                })?;
            let plain = reader.age_decrypt(&cipher, &format!("the key of {location}"))?;
            plain[..].try_into().map_err(|_| {
                Error::input(format!("{location}: the marker's key is not 32 bytes"))
            })?
        } else {
            return Err(Error::input(format!(
                "{location} is an encrypted repository: backups need --encrypt-to RECIPIENT (its \
                 age recipients) and restore, verify, export and show need --identity FILE"
            )));
        };
        if hex::encode(hmac_sha256(&key, CHECK_TEXT)) != self.check {
            return Err(Error::input(format!(
                "{location} is encrypted to other recipients than those given; give every \
                 recipient the repository was created with (--encrypt-to)"
            )));
        }
        Ok(Encryption {
            id_key: key,
            recipients,
            identities,
        })
    }
}

impl Encryption {
    pub fn can_read(&self) -> bool {
        !self.identities.is_empty()
    }

    pub fn age_encrypt(&self, plain: &[u8]) -> Result<Vec<u8>> {
        age_encrypt(
            self.recipients.iter().map(|r| r as &dyn age::Recipient),
            plain,
            "encrypting to the repository's recipients",
            "encrypting",
        )
    }

    pub fn age_decrypt(&self, cipher: &[u8], what: &str) -> Result<Zeroizing<Vec<u8>>> {
        if self.identities.is_empty() {
            return Err(Error::input(format!(
                "{what} is encrypted: give --identity FILE (the age identity of a recipient of the repository)"
            )));
        }
        age_decrypt(
            self.identities.iter().map(|i| i as &dyn age::Identity),
            cipher,
            "repository",
            what,
            "give the identity of a recipient of the repository (--identity FILE)",
        )
    }
}

/// age encryption as both the repository and the snapshot's Secrets use it; `to` and `io` are
/// the callers' own wording for a failure, which their users already know.
pub fn age_encrypt<'a>(
    recipients: impl Iterator<Item = &'a dyn age::Recipient>,
    plain: &[u8],
    to: &str,
    io: &str,
) -> Result<Vec<u8>> {
    let enc = age::Encryptor::with_recipients(recipients)
        .map_err(|e| Error::other(format!("{to}: {e}")))?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut w = enc.wrap_output(&mut out).map_err(|e| Error::io(io, e))?;
    w.write_all(plain)
        .and_then(|()| w.finish().map(|_| ()))
        .map_err(|e| Error::io(io, e))?;
    Ok(out)
}

/// The reverse of [`age_encrypt`]: damage is blamed on `part`, a wrong identity is answered
/// with `hint`.
pub fn age_decrypt<'a>(
    identities: impl Iterator<Item = &'a dyn age::Identity>,
    cipher: &[u8],
    part: &str,
    what: &str,
    hint: &str,
) -> Result<Zeroizing<Vec<u8>>> {
    let dec = age::Decryptor::new(cipher)
        .map_err(|e| Error::damaged(part, what, format!("not an age file: {e}")))?;
    let mut r = dec
        .decrypt(identities)
        .map_err(|e| Error::input(format!("cannot decrypt {what}: {e}; {hint}")))?;
    let mut out = Zeroizing::new(Vec::new());
    r.read_to_end(&mut out)
        .map_err(|e| Error::damaged(part, what, format!("decryption failed: {e}")))?;
    Ok(out)
}

/// A pack's data key.
pub struct PackKey {
    key: Zeroizing<[u8; 32]>,
    wrapped: String,
}

impl PackKey {
    pub fn generate(enc: &Encryption) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::fill(&mut key[..]);
        let wrapped = enc
            .age_encrypt(&key[..])
            .map(|c| base64::engine::general_purpose::STANDARD.encode(c))
            .expect("age encryption to parsed recipients succeeds");
        PackKey { key, wrapped }
    }

    pub fn wrapped(&self) -> String {
        self.wrapped.clone()
    }

    fn nonce(offset: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&offset.to_le_bytes());
        Nonce::from(n)
    }

    pub fn seal(&self, offset: u64, plain: &[u8]) -> std::io::Result<Vec<u8>> {
        ChaCha20Poly1305::new(Key::from_slice(&self.key[..]))
            .encrypt(&Self::nonce(offset), plain)
            .map_err(|_| std::io::Error::other("sealing a chunk failed"))
    }

    /// `None` when the chunk was changed (or sealed at another offset or under another key).
    pub fn open(&self, offset: u64, sealed: &[u8]) -> Option<Vec<u8>> {
        ChaCha20Poly1305::new(Key::from_slice(&self.key[..]))
            .decrypt(&Self::nonce(offset), sealed)
            .ok()
    }
}

/// Pack keys unwrapped so far by a reader.
#[derive(Default)]
pub struct Keys {
    enc: Option<std::sync::Arc<Encryption>>,
    cache: Mutex<HashMap<String, [u8; 32]>>,
}

impl Keys {
    pub fn new(enc: Option<std::sync::Arc<Encryption>>) -> Self {
        Keys {
            enc,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn pack_key(&self, wrapped: &str) -> std::result::Result<PackKey, String> {
        if let Some(k) = self.cache.lock().expect("keys").get(wrapped) {
            return Ok(PackKey {
                key: Zeroizing::new(*k),
                wrapped: wrapped.to_string(),
            });
        }
        let enc = self
            .enc
            .as_ref()
            .ok_or_else(|| "the chunk is encrypted and no --identity was given".to_string())?;
        let cipher = base64::engine::general_purpose::STANDARD
            .decode(wrapped)
            .map_err(|e| format!("a pack key is not base64: {e}"))?;
        let plain = enc
            .age_decrypt(&cipher, "a pack key")
            .map_err(|e| e.to_string())?;
        let key: [u8; 32] = plain[..]
            .try_into()
            .map_err(|_| "a pack key is not 32 bytes".to_string())?;
        self.cache
            .lock()
            .expect("keys")
            .insert(wrapped.to_string(), key);
        Ok(PackKey {
            key: Zeroizing::new(key),
            wrapped: wrapped.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_chunk_opens_only_at_its_offset_and_unchanged() {
        let id = age::x25519::Identity::generate();
        let cfg = EncryptionConfig::new(&[id.to_public()]).unwrap();
        let enc = cfg.open("repo", vec![id.to_public()], vec![]).unwrap();
        let k = PackKey::generate(&enc);
        let mut sealed = k.seal(4096, b"rows").unwrap();
        assert_eq!(k.open(4096, &sealed).unwrap(), b"rows");
        assert!(k.open(0, &sealed).is_none());
        sealed[0] ^= 1;
        assert!(k.open(4096, &sealed).is_none());
    }

    #[test]
    fn writers_need_every_recipient_and_readers_one_identity_for_the_same_chunk_id_key() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let cfg = EncryptionConfig::new(&[id.to_public(), other.to_public()]).unwrap();
        let writer = cfg
            .open("repo", vec![other.to_public(), id.to_public()], vec![])
            .unwrap();
        let reader = cfg.open("repo", vec![], vec![id.clone()]).unwrap();
        assert_eq!(writer.id_key, reader.id_key);
        assert!(cfg.open("repo", vec![id.to_public()], vec![]).is_err());
        let stranger = age::x25519::Identity::generate();
        assert!(cfg.open("repo", vec![], vec![stranger]).is_err());
        assert!(cfg.open("repo", vec![], vec![]).is_err());
        let k = PackKey::generate(&writer);
        let keys = Keys::new(Some(std::sync::Arc::new(reader)));
        let again = keys.pack_key(&k.wrapped()).unwrap();
        assert_eq!(again.open(0, &k.seal(0, b"x").unwrap()).unwrap(), b"x");
        assert!(!serde_json::to_string(&cfg).unwrap().contains("age1"));
    }
}
