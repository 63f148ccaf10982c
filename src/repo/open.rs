//! Opening a repository: its marker, and whether it may be created. A repository is created
//! only on purpose (`repo init`, `backup --init`): any other command given a location without
//! a marker refuses it, naming it, so a mistyped `--repo` never grows a new repository.
//! The encryption a backup was told to use is checked against the marker, because whoever can
//! write the bucket can also rewrite the marker.

use std::sync::Arc;

use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::crypt::{self, Encryption, EncryptionConfig};
use super::{InitOptions, Location, MARKER, REPO_FORMAT, Repository, private, s3, tool_version};
use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Marker {
    format: u32,
    created: chrono::DateTime<chrono::Utc>,
    tool: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption: Option<EncryptionConfig>,
}

impl Repository {
    /// Opens an existing repository; a missing location or one without the marker is an error.
    pub async fn open(location: &str) -> Result<Self> {
        let loc = Location::parse(location)?;
        let mut repo = Self::connect(&loc, false)?;
        repo.probe().await?;
        match repo.store.head(&Path::from(MARKER)).await {
            Ok(_) => {
                repo.check_marker().await?;
                Ok(repo)
            }
            Err(object_store::Error::NotFound { .. }) => Err(Error::input(format!(
                "{} is not an amlmigrate repository ({MARKER} is missing) and nothing was \
                 created there: check --repo (or AMLMIGRATE_REPO); a new repository is made \
                 only by `amlmigrate repo init --repo {}` or `amlmigrate backup --init`",
                repo.location, repo.location
            ))),
            Err(e) => Err(repo.store_err("reading the repository marker", e)),
        }
    }

    /// Opens a repository, creating it as `init` says when the location does not exist or is
    /// empty. Returns whether it was created.
    pub async fn open_or_init(location: &str, init: &InitOptions) -> Result<(Self, bool)> {
        let loc = Location::parse(location)?;
        let mut repo = Self::connect(&loc, true)?;
        repo.probe().await?;
        match repo.store.head(&Path::from(MARKER)).await {
            Ok(_) => {
                repo.check_marker().await?;
                return Ok((repo, false));
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(repo.store_err("reading the repository marker", e)),
        }
        let mut listing = repo.store.list(None);
        if let Some(first) = listing.next().await {
            drop(listing);
            // Another backup may have created the repository since we looked: then it is one.
            if repo.store.head(&Path::from(MARKER)).await.is_ok() {
                repo.check_marker().await?;
                return Ok((repo, false));
            }
            let what = match first {
                Ok(meta) => format!("it holds {}", meta.location),
                Err(e) => format!("listing it failed: {e}"),
            };
            return Err(Error::Refused(format!(
                "{} is not empty and is not an amlmigrate repository ({what}); choose an empty folder for --repo",
                repo.location
            )));
        }
        let recipients = crypt::parse_recipients(&init.recipients)?;
        let format = init.format.unwrap_or(REPO_FORMAT);
        if !(1..=REPO_FORMAT).contains(&format) {
            return Err(Error::input(format!(
                "repository format {format} does not exist: use 1 (plain parts) or 2 (deduplicated)"
            )));
        }
        if format < 2 && !recipients.is_empty() {
            return Err(Error::input(
                "an encrypted repository is format 2: leave out --format 1 or --encrypt-to",
            ));
        }
        let marker = Marker {
            format,
            created: chrono::Utc::now(),
            tool: tool_version(),
            encryption: if recipients.is_empty() {
                None
            } else {
                Some(EncryptionConfig::new(&recipients)?)
            },
        };
        let body = serde_json::to_vec_pretty(&marker).expect("marker serializes");
        match repo
            .store
            .put_opts(
                &Path::from(MARKER),
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await
        {
            Ok(_) => {
                repo.check_marker().await?;
                Ok((repo, true))
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                repo.check_marker().await?;
                Ok((repo, false))
            }
            Err(e) => Err(repo.store_err("creating the repository marker", e)),
        }
    }

    fn connect(loc: &Location, create: bool) -> Result<Self> {
        match loc {
            Location::Local(path) => {
                if create {
                    private::create_dir_private(path).map_err(|e| {
                        Error::io(format!("creating repository folder {}", path.display()), e)
                    })?;
                } else if !path.is_dir() {
                    return Err(Error::input(format!(
                        "repository {} does not exist and nothing was created: check --repo \
                         (or AMLMIGRATE_REPO); a new repository is made only by `amlmigrate \
                         repo init` or `amlmigrate backup --init`",
                        path.display()
                    )));
                }
                let abs = std::fs::canonicalize(path)
                    .map_err(|e| Error::io(format!("opening repository {}", path.display()), e))?;
                let store = LocalFileSystem::new_with_prefix(&abs).map_err(|e| Error::Store {
                    repo: loc.display(),
                    context: "opening".into(),
                    source: e,
                })?;
                Ok(Self::unread(
                    Arc::new(private::PrivateFs::new(store)),
                    abs.display().to_string(),
                    Location::Local(abs),
                    None,
                ))
            }
            Location::S3 { bucket, prefix } => {
                let (store, target) = s3::build(bucket)?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(store)
                } else {
                    Arc::new(PrefixStore::new(store, prefix.as_str()))
                };
                Ok(Self::unread(
                    store,
                    loc.display(),
                    loc.clone(),
                    Some(target),
                ))
            }
        }
    }

    /// The handle as it stands before its marker is read and before any signing or decryption
    /// keys are given, whichever store it is on.
    fn unread(
        store: Arc<dyn ObjectStore>,
        location: String,
        loc: Location,
        s3: Option<s3::S3Target>,
    ) -> Repository {
        Repository {
            store,
            location,
            loc,
            s3,
            signing: Default::default(),
            format: 1,
            encryption_config: None,
            encryption: None,
            keys: Arc::new(crypt::Keys::default()),
            sessions: Arc::default(),
            index_cache: Arc::default(),
        }
    }

    /// For S3: one list request, so a missing bucket, wrong credentials or an unreachable
    /// endpoint are reported as such before anything else happens.
    async fn probe(&self) -> Result<()> {
        let Some(t) = &self.s3 else {
            return Ok(());
        };
        match self.store.list_with_delimiter(None).await {
            Ok(_) => Ok(()),
            Err(e) => {
                Err(s3::classify(t, &e)
                    .unwrap_or_else(|| self.store_err("listing the repository", e)))
            }
        }
    }

    async fn check_marker(&mut self) -> Result<()> {
        let bytes = self
            .store
            .get(&Path::from(MARKER))
            .await
            .map_err(|e| self.store_err("reading the repository marker", e))?
            .bytes()
            .await
            .map_err(|e| self.store_err("reading the repository marker", e))?;
        let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| {
            Error::input(format!(
                "{}: {MARKER} is not valid ({e}); this is not an amlmigrate repository",
                self.location
            ))
        })?;
        if marker.format > REPO_FORMAT {
            return Err(Error::input(format!(
                "{}: repository format {} is newer than this amlmigrate understands ({REPO_FORMAT}); upgrade amlmigrate",
                self.location, marker.format
            )));
        }
        self.format = marker.format;
        self.encryption_config = marker.encryption;
        Ok(())
    }

    pub fn is_encrypted(&self) -> bool {
        self.encryption_config.is_some()
    }

    pub(crate) fn encryption(&self) -> Option<&Encryption> {
        self.encryption.as_deref()
    }

    /// Gives an encrypted repository its keys: the recipients (a backup) and/or identities (a
    /// reader). An unencrypted repository ignores them.
    pub fn unlock(
        &mut self,
        recipients: &[String],
        identity: Option<&std::path::Path>,
    ) -> Result<()> {
        let Some(cfg) = &self.encryption_config else {
            return Ok(());
        };
        if recipients.is_empty() && identity.is_none() {
            // Prune and listings by id need no key; readers of content say what is missing.
            return Ok(());
        }
        let recipients = crypt::parse_recipients(recipients)?;
        let identities = match identity {
            Some(p) => crypt::load_identities(p)?,
            None => Vec::new(),
        };
        let enc = Arc::new(cfg.open(&self.location, recipients, identities)?);
        self.keys = Arc::new(crypt::Keys::new(Some(enc.clone())));
        self.encryption = Some(enc);
        Ok(())
    }

    /// A backup of an encrypted repository needs its recipients.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.is_encrypted() && self.encryption().is_none_or(|e| e.recipients.is_empty()) {
            return Err(Error::input(format!(
                "{} is an encrypted repository: give the recipients it was created with (--encrypt-to age1…)",
                self.location
            )));
        }
        Ok(())
    }

    /// Checks what a backup was told about encryption against the marker, so that a marker
    /// rewritten by whoever can write the bucket cannot switch encryption off (or on):
    /// recipients given (and `plain` not) means "encrypted to these"; `plain` means "this
    /// repository is not encrypted, on purpose" (the recipients then cover only Secrets).
    pub fn check_encryption_intent(&self, told: &EncryptionIntent<'_>) -> Result<()> {
        let recipients: Vec<&str> = told
            .recipients
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty() && !s.starts_with('#'))
            .collect();
        let (recipients_setting, plain_setting) = told.settings;
        match (self.is_encrypted(), told.plain) {
            (true, true) => Err(Error::Refused(format!(
                "{}: this backup was told the repository is not encrypted ({plain_setting}), \
                 but its marker {MARKER} says it is encrypted; nothing was written. Leave out \
                 {plain_setting} and give the repository's recipients ({recipients_setting})",
                self.location
            ))),
            (false, false) if !recipients.is_empty() => Err(Error::Refused(format!(
                "{}: this backup was told to encrypt to {} ({recipients_setting}), but the \
                 repository's marker {MARKER} says it is not encrypted; nothing was written. If \
                 the repository was created encrypted, someone who can write to it removed its \
                 encryption settings: do not back up into it until that is explained. If it is \
                 a plain repository on purpose ({recipients_setting} then encrypts only the \
                 Secrets), use {plain_setting}",
                self.location,
                recipients.join(", ")
            ))),
            _ => Ok(()),
        }
    }
}

/// What a backup was told about the repository's encryption, with the names of the settings
/// that told it (flags or configuration keys), so a refusal names what to change.
pub struct EncryptionIntent<'a> {
    pub recipients: &'a [String],
    /// The repository is plain on purpose.
    pub plain: bool,
    /// (the recipients' setting, the "plain on purpose" setting)
    pub settings: (&'static str, &'static str),
}
