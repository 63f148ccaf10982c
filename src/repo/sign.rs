//! Signed snapshots: an Ed25519 signature over the manifest's exact bytes, stored as its own
//! create-only object beside it and written before the manifest commits the snapshot.
//!
//! The manifest lists every part's and every entry's size and sha256, so a good signature covers
//! everything a snapshot holds. Keys are standard PEM files (PKCS#8 secret key, SubjectPublicKeyInfo
//! public key), so `openssl genpkey -algorithm ed25519` makes keys this tool accepts and
//! `openssl pkeyutl -verify -rawin` checks a signature without it.
//!
//! Whoever can write the bucket can also rewrite `amlmigrate-signing.json`, drop a signature or
//! sign with a key of their own. So the keys a reader trusts come only from the reader's side
//! (`--verify-key`, `AMLMIGRATE_VERIFY_KEY`, the upgrade config); the repository's settings only
//! *add* a requirement (a reader without a key is refused) and name the expected key, never
//! vouch for one.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::Repository;
use crate::error::{Error, Result};

/// The signature object, beside `manifest.json` in the snapshot folder.
pub const SIGNATURE: &str = "manifest.json.sig";
/// The repository's signing settings, beside the format marker.
pub const SETTINGS: &str = "amlmigrate-signing.json";
const ALGORITHM: &str = "ed25519";
/// Signatures and settings are a few hundred bytes; anything far larger is not one.
const MAX_SMALL_OBJECT: u64 = 1024 * 1024;

/// A short, stable name of a public key: the first 16 hex digits of the sha256 of its 32 bytes.
fn key_id(vk: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(vk.as_bytes())[..8])
}

/// A key prints as its short id only: a secret key's bytes must never reach a log, and a
/// public key's are noise there.
macro_rules! debug_as_id {
    ($key:ident) => {
        impl std::fmt::Debug for $key {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($key), "({})"), self.id)
            }
        }
    };
}

/// A key file's text, zeroed on drop since it may hold a secret key.
fn read_key_file(path: &Path, what: &str) -> Result<Zeroizing<String>> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| Error::input(format!("cannot read the {what} {}: {e}", path.display())))
}

/// Key ids as messages list them, so a refusal names the same keys the same way wherever
/// they come from.
fn join_ids<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    ids.collect::<Vec<_>>().join(", ")
}

/// The secret half of a signing key (zeroed on drop by ed25519-dalek).
pub struct SignKey {
    key: SigningKey,
    id: String,
}

debug_as_id!(SignKey);

impl SignKey {
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::fill(&mut seed[..]);
        Self::from_key(SigningKey::from_bytes(&seed))
    }

    fn from_key(key: SigningKey) -> Self {
        let id = key_id(&key.verifying_key());
        SignKey { key, id }
    }

    /// Reads a PKCS#8 PEM Ed25519 secret key (`-----BEGIN PRIVATE KEY-----`).
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_key_file(path, "signing key")?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| {
            Error::input(format!(
                "{} is not an Ed25519 secret key in PKCS#8 PEM ({e}); create one with \
                 `amlmigrate key generate` or `openssl genpkey -algorithm ed25519`",
                path.display()
            ))
        })?;
        Ok(Self::from_key(key))
    }

    /// The secret key as PKCS#8 PEM, for the key file only. Version 1 (no public key inside),
    /// which is what openssl writes and what OpenSSL 3.0 reads.
    pub fn to_pem(&self) -> Result<Zeroizing<String>> {
        let pair = KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        pair.to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::other(format!("encoding the secret key: {e}")))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn verify_key(&self) -> VerifyKey {
        VerifyKey {
            key: self.key.verifying_key(),
            id: self.id.clone(),
        }
    }

    /// Signs the manifest bytes of snapshot `id` as stored.
    pub fn sign(&self, manifest: &[u8]) -> SignatureFile {
        let sig = self.key.sign(manifest);
        SignatureFile {
            format: 1,
            algorithm: ALGORITHM.into(),
            key_id: self.id.clone(),
            manifest_sha256: hex::encode(Sha256::digest(manifest)),
            signature: B64.encode(sig.to_bytes()),
        }
    }
}

/// A public key a reader trusts.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyKey {
    key: VerifyingKey,
    id: String,
}

debug_as_id!(VerifyKey);

impl VerifyKey {
    /// Reads a public key in PEM (`-----BEGIN PUBLIC KEY-----`, as `key generate` and
    /// `openssl pkey -pubout` write it).
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_key_file(path, "public key")?;
        Self::parse(&text).map_err(|e| {
            Error::input(format!(
                "{} is not an Ed25519 public key in PEM ({e}); use the .pub file `amlmigrate key \
                 generate` wrote (or `openssl pkey -in KEY -pubout`)",
                path.display()
            ))
        })
    }

    pub fn parse(pem: &str) -> std::result::Result<Self, String> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| e.to_string())?;
        Ok(VerifyKey {
            id: key_id(&key),
            key,
        })
    }

    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("an Ed25519 public key encodes")
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// `manifest.json.sig`: which key signed, and the signature over the manifest's bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignatureFile {
    pub format: u32,
    pub algorithm: String,
    pub key_id: String,
    /// For people comparing files by hand; the signature is what is checked.
    pub manifest_sha256: String,
    /// The 64-byte Ed25519 signature, base64.
    pub signature: String,
}

/// `amlmigrate-signing.json`: what the repository's owner asked of every snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default)]
    pub require_signatures: bool,
    /// Public keys backups are expected to sign with (PEM). Readers never trust these: a backup
    /// signing with another key is refused, and a reader without a key is told which one to get.
    #[serde(default)]
    pub keys: Vec<TrustedKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    pub id: String,
    pub public_key: String,
}

impl Settings {
    fn key_ids(&self) -> String {
        join_ids(self.keys.iter().map(|k| k.id.as_str()))
    }
}

/// The keys a reader trusts; none: signatures are checked only where the repository requires
/// them (and then the read is refused for want of a key).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub keys: Vec<VerifyKey>,
}

impl Trust {
    pub fn read(paths: &[impl AsRef<Path>]) -> Result<Self> {
        let keys = paths
            .iter()
            .map(|p| VerifyKey::read(p.as_ref()))
            .collect::<Result<_>>()?;
        Ok(Trust { keys })
    }

    fn ids(&self) -> String {
        join_ids(self.keys.iter().map(|k| k.id.as_str()))
    }
}

/// What a repository handle signs with and trusts.
#[derive(Debug, Clone, Default)]
pub(super) struct Signing {
    key: Option<Arc<SignKey>>,
    trust: Trust,
}

/// Why a snapshot's signature was not accepted (a label for listings; the error says more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The repository requires signatures and the reader gave no key.
    NoReaderKey,
    Unsigned,
    Malformed,
    OtherKey,
    BadSignature,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NoReaderKey => "no verify key",
            Refusal::Unsigned => "UNSIGNED",
            Refusal::Malformed => "MALFORMED",
            Refusal::OtherKey => "OTHER KEY",
            Refusal::BadSignature => "BAD SIGNATURE",
        }
    }
}

/// What a listing says about one snapshot's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureState {
    /// No key given and none required.
    NotChecked,
    Signed {
        key: String,
    },
    Refused {
        refusal: Refusal,
        reason: String,
    },
}

/// Checks a manifest's signature against the reader's keys. `Ok(None)`: nothing asked for a
/// check (no key given, not required); `Ok(Some(key id))`: signed by that trusted key; any
/// refusal is an [`Error::Untrusted`] naming the snapshot, why, and what to do.
pub fn check(
    snapshot: &str,
    manifest: &[u8],
    signature: Option<&[u8]>,
    trust: &Trust,
    settings: &Settings,
) -> Result<Option<String>> {
    verdict(manifest, signature, trust, settings)
        .map_err(|(_, why)| Error::Untrusted(format!("snapshot {snapshot}: {why}")))
}

fn verdict(
    manifest: &[u8],
    signature: Option<&[u8]>,
    trust: &Trust,
    settings: &Settings,
) -> std::result::Result<Option<String>, (Refusal, String)> {
    if trust.keys.is_empty() {
        if !settings.require_signatures {
            return Ok(None);
        }
        let expected = if settings.keys.is_empty() {
            String::new()
        } else {
            format!(" (key {})", settings.key_ids())
        };
        return Err((
            Refusal::NoReaderKey,
            format!(
                "the repository requires signed snapshots, and no key to check them with was \
                 given; pass --verify-key FILE (or AMLMIGRATE_VERIFY_KEY) with the public key of \
                 the backups' signing key{expected}"
            ),
        ));
    }
    let Some(raw) = signature else {
        return Err((
            Refusal::Unsigned,
            format!(
                "not signed ({SIGNATURE} is missing), and a verify key was given ({}); refusing \
                 to read it. Take a new backup with --sign-key, or check who wrote this snapshot",
                trust.ids()
            ),
        ));
    };
    let malformed = |why: String| (Refusal::Malformed, why);
    let sig: SignatureFile = serde_json::from_slice(raw)
        .map_err(|e| malformed(format!("{SIGNATURE} is not a signature file ({e})")))?;
    if sig.algorithm != ALGORITHM {
        return Err(malformed(format!(
            "{SIGNATURE} uses algorithm {:?}; only {ALGORITHM} is accepted",
            sig.algorithm
        )));
    }
    let Some(key) = trust.keys.iter().find(|k| k.id == sig.key_id) else {
        return Err((
            Refusal::OtherKey,
            format!(
                "signed with key {}, which is not a trusted key (trusted: {}); pass that key's \
                 public file with --verify-key if you trust it",
                sig.key_id,
                trust.ids()
            ),
        ));
    };
    let bytes: [u8; 64] = B64
        .decode(sig.signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed(format!("{SIGNATURE} holds no 64-byte signature")))?;
    key.key
        .verify_strict(manifest, &Signature::from_bytes(&bytes))
        .map_err(|_| {
            (
                Refusal::BadSignature,
                format!(
                    "BAD SIGNATURE: manifest.json does not match the signature of key {}; the \
                     manifest was changed after the backup signed it. Do not restore it; restore \
                     an earlier snapshot and find out who can write the repository",
                    key.id
                ),
            )
        })?;
    Ok(Some(key.id.clone()))
}

impl Repository {
    /// Signs every snapshot this handle commits with `key`.
    pub fn with_sign_key(mut self, key: Option<Arc<SignKey>>) -> Self {
        self.signing.key = key;
        self
    }

    /// Checks every manifest this handle reads against `trust` (see [`check`]).
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.signing.trust = trust;
        self
    }

    pub fn trust(&self) -> &Trust {
        &self.signing.trust
    }

    /// The repository's signing settings (defaults when it has none).
    pub async fn signing_settings(&self) -> Result<Settings> {
        let path = ObjPath::from(SETTINGS);
        match self.store.get(&path).await {
            Ok(got) if got.meta.size > MAX_SMALL_OBJECT => Err(Error::input(format!(
                "{}: {SETTINGS} is {} bytes, too large to be settings; rewrite it with `amlmigrate \
                 repo init`",
                self.location, got.meta.size
            ))),
            Ok(got) => {
                let bytes = got
                    .bytes()
                    .await
                    .map_err(|e| self.store_err(format!("reading {SETTINGS}"), e))?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    Error::input(format!(
                        "{}: {SETTINGS} is not valid ({e}); rewrite it with `amlmigrate repo init`",
                        self.location
                    ))
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(Settings::default()),
            Err(e) => Err(self.store_err(format!("reading {SETTINGS}"), e)),
        }
    }

    pub async fn set_signing_settings(&self, s: &Settings) -> Result<()> {
        let body = serde_json::to_vec_pretty(s).expect("settings serialize");
        self.store
            .put(&ObjPath::from(SETTINGS), PutPayload::from(body))
            .await
            .map(|_| ())
            .map_err(|e| self.store_err(format!("writing {SETTINGS}"), e))
    }

    /// Before a backup writes anything: refuses one the repository would not accept (unsigned
    /// where signatures are required, or signed with a key the repository does not name).
    pub async fn check_signing_ready(&self) -> Result<()> {
        let settings = self.signing_settings().await?;
        match &self.signing.key {
            None if settings.require_signatures => Err(Error::Untrusted(format!(
                "repository {} requires signed snapshots; give the signing key with --sign-key \
                 FILE (or AMLMIGRATE_SIGN_KEY); `amlmigrate key generate` makes one. Nothing was \
                 written",
                self.location
            ))),
            Some(k) if !settings.keys.is_empty() && !settings.keys.iter().any(|t| t.id == k.id) => {
                Err(Error::input(format!(
                    "the signing key {} is not one repository {} expects ({}); readers would \
                     refuse its snapshots. Use the right --sign-key, or add its public key with \
                     `amlmigrate repo init --trust`. Nothing was written",
                    k.id,
                    self.location,
                    settings.key_ids()
                )))
            }
            _ => Ok(()),
        }
    }

    /// Writes the signature of snapshot `id`'s manifest bytes, create-only, before the manifest
    /// itself is written: a committed signed snapshot never lacks its signature.
    pub(super) async fn sign_before_commit(&self, id: &str, manifest: &[u8]) -> Result<()> {
        let Some(key) = &self.signing.key else {
            return self.check_signing_ready().await;
        };
        let body = serde_json::to_vec_pretty(&key.sign(manifest)).expect("signature serializes");
        match self
            .store
            .put_opts(
                &Self::snapshot_path(id, SIGNATURE),
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(Error::Refused(format!(
                "snapshot {id} already has a signature; refusing to overwrite it"
            ))),
            Err(e) => Err(self.store_err(format!("writing the signature of snapshot {id}"), e)),
        }
    }

    /// Checks the manifest bytes of snapshot `id` as read, before anything parses them.
    pub(super) async fn check_signature(
        &self,
        id: &str,
        manifest: &[u8],
    ) -> Result<Option<String>> {
        let settings = self.signing_settings().await?;
        let sig = self.signature_bytes(id, &settings).await?;
        check(id, manifest, sig.as_deref(), &self.signing.trust, &settings)
    }

    /// The signature object of `id`, when a check will need it.
    async fn signature_bytes(&self, id: &str, settings: &Settings) -> Result<Option<bytes::Bytes>> {
        if self.signing.trust.keys.is_empty() && !settings.require_signatures {
            return Ok(None);
        }
        match self.store.get(&Self::snapshot_path(id, SIGNATURE)).await {
            Ok(got) if got.meta.size > MAX_SMALL_OBJECT => Ok(Some(bytes::Bytes::from_static(
                b"(too large to be a signature)",
            ))),
            Ok(got) => got
                .bytes()
                .await
                .map(Some)
                .map_err(|e| self.store_err(format!("reading the signature of {id}"), e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.store_err(format!("reading the signature of {id}"), e)),
        }
    }

    /// Every committed snapshot's manifest with its signature state, oldest first, for
    /// listings: a snapshot that fails the check is listed and marked, never handed to a
    /// reader (that is [`Repository::manifest`]).
    pub async fn manifests_for_listing(&self) -> Result<Vec<(super::Manifest, SignatureState)>> {
        let settings = self.signing_settings().await?;
        let mut out = Vec::new();
        for id in self.snapshot_ids().await? {
            let bytes = self.manifest_bytes(&id).await?;
            let sig = self.signature_bytes(&id, &settings).await?;
            let state = match verdict(&bytes, sig.as_deref(), &self.signing.trust, &settings) {
                Ok(None) => SignatureState::NotChecked,
                Ok(Some(key)) => SignatureState::Signed { key },
                Err((refusal, reason)) => SignatureState::Refused { refusal, reason },
            };
            out.push((self.parse_manifest(&id, &bytes)?, state));
        }
        Ok(out)
    }

    /// Which trusted key signed snapshot `id` (`None` when no key was given and none is
    /// required); an unsigned or badly signed snapshot is an [`Error::Untrusted`].
    pub async fn signed_by(&self, id: &str) -> Result<Option<String>> {
        let bytes = self.manifest_bytes(id).await?;
        self.check_signature(id, &bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(k: &SignKey) -> Trust {
        Trust {
            keys: vec![k.verify_key()],
        }
    }

    fn sig_bytes(k: &SignKey, m: &[u8]) -> Vec<u8> {
        serde_json::to_vec(&k.sign(m)).unwrap()
    }

    #[test]
    fn a_signed_manifest_verifies_and_names_its_key() {
        let k = SignKey::generate();
        let m = br#"{"id":"x"}"#;
        let got = check(
            "x",
            m,
            Some(&sig_bytes(&k, m)),
            &trust(&k),
            &Settings::default(),
        );
        assert_eq!(got.unwrap().as_deref(), Some(k.id()));
    }

    #[test]
    fn a_changed_manifest_an_unsigned_one_and_another_key_are_refused() {
        let k = SignKey::generate();
        let m = br#"{"id":"x","sha256":"aa"}"#;
        let sig = sig_bytes(&k, m);
        let s = Settings::default();
        let e = check(
            "x",
            br#"{"id":"x","sha256":"ab"}"#,
            Some(&sig),
            &trust(&k),
            &s,
        )
        .unwrap_err();
        assert!(e.to_string().contains("BAD SIGNATURE"), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::Untrusted);
        let e = check("x", m, None, &trust(&k), &s).unwrap_err();
        assert!(e.to_string().contains("not signed"), "{e}");
        let other = SignKey::generate();
        let e = check("x", m, Some(&sig), &trust(&other), &s).unwrap_err();
        assert!(e.to_string().contains("not a trusted key"), "{e}");
        // Another key forging the same key id still fails the signature itself.
        let mut forged = other.sign(m);
        forged.key_id = k.id().to_string();
        let forged = serde_json::to_vec(&forged).unwrap();
        assert!(check("x", m, Some(&forged), &trust(&k), &s).is_err());
    }

    #[test]
    fn a_required_signature_without_a_reader_key_is_refused_and_otherwise_not_checked() {
        let m = b"{}";
        assert_eq!(
            check("x", m, None, &Trust::default(), &Settings::default()).unwrap(),
            None
        );
        let required = Settings {
            require_signatures: true,
            keys: vec![],
        };
        let e = check("x", m, None, &Trust::default(), &required).unwrap_err();
        assert!(e.to_string().contains("--verify-key"), "{e}");
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let k = SignKey::generate();
        let pem = k.to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(key_id(&back.verifying_key()), k.id());
        let pubpem = k.verify_key().to_pem();
        assert_eq!(VerifyKey::parse(&pubpem).unwrap(), k.verify_key());
        assert!(VerifyKey::parse(&pem).is_err());
    }
}
