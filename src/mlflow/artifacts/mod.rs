//! MLflow artifact trees: where they are ([`ArtifactLocation`]: a folder, or `s3://bucket/prefix`
//! in S3 / MinIO), copied between two of them (`mlflow migrate --artifacts-from/--artifacts-to`),
//! put into a snapshot (`backup --mlflow-artifacts`) and taken out of one.
//!
//! The guarantees are the same for every kind of store: every file is streamed, hashed on the
//! way and read back from the destination to compare; a destination file that already holds the
//! same bytes is skipped (so a re-run after an interruption resumes); one that holds different
//! bytes stops the copy and is never overwritten. In a folder, symbolic links are never followed
//! (see [`local`]): a link in a source tree is left out and reported, one in a destination tree
//! stops the copy.

pub mod local;
mod remote;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::progress::{Event, ProgressRef};
use crate::repo::Repository;
use crate::repo::manifest::Part;
use crate::repo::sink::{Msg, PartSink};
use local::{Listing, LocalTree};
use remote::RemoteTree;

/// The name of the snapshot part that holds an MLflow artifact tree, and the folder its
/// entries live in.
pub const PART_NAME: &str = "mlflow-artifacts";

/// Where an artifact tree is: a folder (`PATH` or `file://PATH`) or an S3 prefix
/// (`s3://BUCKET/PREFIX`, optionally `?profile=NAME` to take the endpoint and credentials from
/// that profile of the shared AWS files instead of the repository's AWS settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactLocation {
    Local(PathBuf),
    S3 {
        bucket: String,
        /// No leading or trailing slash; may be empty.
        prefix: String,
        profile: Option<String>,
    },
}

impl ArtifactLocation {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        // Parameters stay out of messages: someone may have put a key there.
        let shown = s.split('?').next().unwrap_or_default();
        let bad = |why: String| {
            Error::input(format!(
                "artifact location {shown}: {why}; use a folder or s3://BUCKET/PREFIX[?profile=NAME]"
            ))
        };
        if s.is_empty() {
            return Err(bad("empty".into()));
        }
        if let Some(path) = s.strip_prefix("file://") {
            return Ok(ArtifactLocation::Local(path.into()));
        }
        let Some(rest) = s.strip_prefix("s3://") else {
            if let Some((scheme, _)) = s.split_once("://") {
                return Err(bad(format!("the {scheme}:// scheme is not supported")));
            }
            return Ok(ArtifactLocation::Local(s.into()));
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
        if !valid_bucket {
            return Err(bad(format!(
                "{bucket:?} is not a valid S3 bucket name (3-63 characters: lowercase letters, digits, '-' and '.')"
            )));
        }
        if !prefix.is_empty() && local::split(prefix).is_err() {
            return Err(bad(format!(
                "the prefix {prefix:?} has empty, '.' or '..' segments"
            )));
        }
        let mut profile = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("profile", p)) if !p.is_empty() => profile = Some(p.to_string()),
                other => {
                    let key = other.map(|(k, _)| k).unwrap_or(pair);
                    return Err(bad(format!(
                        "unknown parameter {key:?} (only profile=NAME; credentials never go into the location)"
                    )));
                }
            }
        }
        Ok(ArtifactLocation::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
            profile,
        })
    }
}

impl fmt::Display for ArtifactLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactLocation::Local(p) => write!(f, "{}", p.display()),
            ArtifactLocation::S3 {
                bucket,
                prefix,
                profile,
            } => {
                write!(f, "s3://{bucket}")?;
                if !prefix.is_empty() {
                    write!(f, "/{prefix}")?;
                }
                if let Some(p) = profile {
                    write!(f, "?profile={p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::str::FromStr for ArtifactLocation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl From<PathBuf> for ArtifactLocation {
    fn from(p: PathBuf) -> Self {
        ArtifactLocation::Local(p)
    }
}

impl Serialize for ArtifactLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ArtifactLocation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ArtifactReport {
    pub from: String,
    pub to: String,
    pub files: u64,
    pub bytes: u64,
    /// Files the destination already held with the same content.
    pub already_there: u64,
    /// Source entries left out because they are symbolic links (never followed) or neither
    /// file nor folder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// An opened artifact tree.
#[derive(Clone)]
enum Tree {
    Local(LocalTree),
    Remote(RemoteTree),
}

impl Tree {
    /// Opens a tree; a folder is created when `create`, else it must exist. Call from the
    /// runtime (S3 trees keep its handle).
    fn open(loc: &ArtifactLocation, create: bool) -> Result<Self> {
        match loc {
            ArtifactLocation::Local(p) => {
                let t = LocalTree::new(p);
                if create {
                    t.create_root()?;
                } else if !p.is_dir() {
                    return Err(Error::input(format!(
                        "artifact folder {} does not exist (give the MLflow server's --artifacts-destination)",
                        p.display()
                    )));
                }
                Ok(Tree::Local(t))
            }
            ArtifactLocation::S3 {
                bucket,
                prefix,
                profile,
            } => Ok(Tree::Remote(RemoteTree::connect(
                bucket,
                prefix,
                profile.as_deref(),
                loc.to_string(),
            )?)),
        }
    }

    fn name(&self) -> String {
        match self {
            Tree::Local(t) => t.root.display().to_string(),
            Tree::Remote(t) => t.name.clone(),
        }
    }

    /// Files (sorted) and the entries left out. Blocking.
    fn list(&self) -> Result<Listing> {
        match self {
            Tree::Local(t) => t.list(),
            Tree::Remote(t) => Ok(Listing {
                files: t.list()?,
                skipped: Vec::new(),
            }),
        }
    }

    /// A file's bytes and size; `None` when absent. Blocking.
    fn read(&self, rel: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        match self {
            Tree::Local(t) => Ok(t.open(rel)?.map(|(f, n)| (Box::new(f) as _, n))),
            Tree::Remote(t) => t.open(rel),
        }
    }

    /// [`Self::read`] from async code.
    async fn read_async(&self, rel: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        match self {
            Tree::Local(t) => Ok(t.open(rel)?.map(|(f, n)| (Box::new(f) as _, n))),
            Tree::Remote(t) => t.get(rel).await,
        }
    }

    /// Size and sha256 of a file; `None` when absent. Blocking.
    fn hash(&self, rel: &str) -> Result<Option<(u64, String)>> {
        match self {
            Tree::Local(t) => t.hash(rel),
            Tree::Remote(t) => match t.open(rel)? {
                None => Ok(None),
                Some((mut r, _)) => {
                    let mut h = crate::archive::HashingWriter::new(std::io::sink());
                    std::io::copy(&mut r, &mut h)
                        .map_err(|e| Error::io(format!("reading {rel} in {}", t.name), e))?;
                    let (_, n, sum) = h.into_parts();
                    Ok(Some((n, sum)))
                }
            },
        }
    }

    /// Writes a new file, then reads it back from the destination and compares. Blocking.
    fn write_checked(&self, rel: &str, src: &mut dyn Read) -> Result<(u64, String)> {
        match self {
            // Read back before it takes its name (see LocalTree::write).
            Tree::Local(t) => t.write(rel, src),
            Tree::Remote(t) => {
                let (n, sum) = t.write(rel, src)?;
                let back = self.hash(rel)?;
                if back.as_ref() != Some(&(n, sum.clone())) {
                    let (m, got) = back.unwrap_or((0, "(missing)".into()));
                    return Err(Error::damaged(
                        "artifacts",
                        rel,
                        format!(
                            "the copy in {} reads back as {got} ({m} bytes), the source is {sum} ({n} bytes)",
                            t.name
                        ),
                    ));
                }
                Ok((n, sum))
            }
        }
    }

    /// `Some(size)` when the file is already there with the same bytes as the source (whose
    /// sha256 `want` gives), `None` when it is absent. Different bytes are refused: a file is
    /// never overwritten.
    fn already_there(
        &self,
        rel: &str,
        want: impl FnOnce() -> Result<String>,
    ) -> Result<Option<u64>> {
        let Some((n, have)) = self.hash(rel)? else {
            return Ok(None);
        };
        if have != want()? {
            return Err(Error::Refused(format!(
                "artifact {rel} already exists in {} with different content; nothing there was overwritten",
                self.name()
            )));
        }
        Ok(Some(n))
    }
}

/// Progress: the artifact "table" is done.
fn finished(progress: &ProgressRef, files: u64, bytes: u64, started: std::time::Instant) {
    progress.event(Event::TableFinished {
        db: "mlflow".into(),
        table: "artifacts".into(),
        rows: files,
        bytes,
        elapsed: started.elapsed(),
    });
}

fn interrupted() -> Error {
    Error::Interrupted(
        "artifact copy stopped; files copied so far are complete and a re-run skips them".into(),
    )
}

fn skipped_notice(progress: &ProgressRef, from: &str, skipped: &[String]) {
    if !skipped.is_empty() {
        progress.event(Event::Notice(format!(
            "{} entries of {from} left out: symbolic links are never followed ({})",
            skipped.len(),
            skipped.join(", ")
        )));
    }
}

/// Copies every file of `from` into `to` (see the module's guarantees).
pub async fn copy_tree(
    from: &ArtifactLocation,
    to: &ArtifactLocation,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<ArtifactReport> {
    let src = Tree::open(from, false)?;
    let dst = Tree::open(to, true)?;
    let started = std::time::Instant::now();
    let (progress, cancel) = (progress.clone(), cancel.clone());
    tokio::task::spawn_blocking(move || {
        let Listing { files, skipped } = src.list()?;
        skipped_notice(&progress, &src.name(), &skipped);
        let mut report = ArtifactReport {
            from: src.name(),
            to: dst.name(),
            skipped,
            ..Default::default()
        };
        progress.event(Event::TableStarted {
            db: "mlflow".into(),
            table: "artifacts".into(),
            est_rows: files.len() as u64,
        });
        for (rel, size) in files {
            if cancel.is_cancelled() {
                return Err(interrupted());
            }
            let vanished = || Error::other(format!("artifact {rel} vanished from {}", src.name()));
            let there = dst.already_there(&rel, || Ok(src.hash(&rel)?.ok_or_else(vanished)?.1))?;
            let n = match there {
                Some(n) => n,
                None => {
                    let (mut reader, _) = src.read(&rel)?.ok_or_else(vanished)?;
                    let (n, _) = dst.write_checked(&rel, &mut reader)?;
                    if n != size {
                        return Err(Error::other(format!(
                            "artifact {rel} in {} changed while it was copied ({n} of {size} bytes); run the copy again",
                            src.name()
                        )));
                    }
                    n
                }
            };
            report.files += 1;
            report.already_there += there.is_some() as u64;
            report.bytes += n;
            progress.event(Event::TableProgress {
                db: "mlflow".into(),
                table: "artifacts".into(),
                rows: report.files,
                bytes: report.bytes,
            });
        }
        finished(&progress, report.files, report.bytes, started);
        Ok(report)
    })
    .await
    .map_err(|e| Error::other(format!("the artifact copy failed: {e}")))?
}

/// Writes the artifact tree at `from` into snapshot `id` as its own part ([`PART_NAME`]): every
/// file streamed into the part with its sha256 in the manifest, links left out (reported as a
/// notice).
pub async fn backup_part(
    repo: &Repository,
    id: &str,
    from: &ArtifactLocation,
    level: i32,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<Part> {
    let src = Tree::open(from, false).map_err(|e| match e {
        Error::Input(m) => Error::Input(format!("--mlflow-artifacts: {m}")),
        other => other,
    })?;
    let listed = src.clone();
    let Listing { files, skipped } = tokio::task::spawn_blocking(move || listed.list())
        .await
        .map_err(|e| Error::other(format!("listing {from} failed: {e}")))??;
    skipped_notice(progress, &src.name(), &skipped);
    let rel = format!("parts/{PART_NAME}.tar.zst");
    let sink = PartSink::open(repo, id, &rel, level);
    let started = std::time::Instant::now();
    progress.event(Event::TableStarted {
        db: "mlflow".into(),
        table: "artifacts".into(),
        est_rows: files.len() as u64,
    });
    let sent = async {
        for (n, (path, _)) in files.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(Error::Interrupted(
                    "backup stopped while archiving artifacts; no snapshot was written".into(),
                ));
            }
            let (reader, size) = src.read_async(path).await?.ok_or_else(|| {
                Error::other(format!("artifact {path} vanished from {}", src.name()))
            })?;
            sink.send(Msg::Reader {
                path: format!("{PART_NAME}/{path}"),
                size,
                reader,
            })
            .await?;
            progress.event(Event::TableProgress {
                db: "mlflow".into(),
                table: "artifacts".into(),
                rows: n as u64 + 1,
                bytes: 0,
            });
        }
        Ok(())
    }
    .await;
    let ((), info) = sink.close(sent).await?;
    let bytes = info.entries.iter().map(|e| e.size).sum();
    finished(progress, info.entries.len() as u64, bytes, started);
    Ok(Part {
        name: PART_NAME.into(),
        path: rel,
        kind: PART_NAME.into(),
        size: info.size,
        sha256: info.sha256,
        entries: info.entries,
        chunked: info.chunked,
    })
}

/// Unpacks a snapshot's artifact part into `to`: each file checked against the manifest before
/// it takes its name (a damaged one never does), files already there with the same bytes
/// skipped, different ones never overwritten, no link followed.
pub async fn extract_part(
    repo: &Repository,
    id: &str,
    part: &Part,
    from: String,
    to: &ArtifactLocation,
    progress: &ProgressRef,
    cancel: &CancellationToken,
) -> Result<ArtifactReport> {
    let dst = Tree::open(to, true)?;
    let started = std::time::Instant::now();
    let report = ArtifactReport {
        from,
        to: dst.name(),
        ..Default::default()
    };
    let cancel = cancel.clone();
    let prefix = format!("{PART_NAME}/");
    let report = repo
        .read_part(id, part, report, move |report, entry| {
            if cancel.is_cancelled() {
                return Err(interrupted());
            }
            let path = entry.entry().path.clone();
            let want = entry.entry().sha256.clone();
            let rel = path.strip_prefix(&prefix).unwrap_or(&path).to_string();
            if local::split(&rel).is_err() {
                return Err(Error::damaged(
                    PART_NAME,
                    &path,
                    "unsafe path in the archive",
                ));
            }
            let there = dst.already_there(&rel, || Ok(want))?;
            // The entry reader fails at its end when the bytes differ from the manifest, so a
            // damaged file never takes its name.
            let n = match there {
                Some(n) => n,
                None => dst.write_checked(&rel, entry)?.0,
            };
            report.files += 1;
            report.already_there += there.is_some() as u64;
            report.bytes += n;
            Ok(())
        })
        .await?;
    finished(progress, report.files, report.bytes, started);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_print_back() {
        let s3 = |b: &str, p: &str, prof: Option<&str>| ArtifactLocation::S3 {
            bucket: b.into(),
            prefix: p.into(),
            profile: prof.map(Into::into),
        };
        for (text, want) in [
            ("s3://mlflow/artifacts", s3("mlflow", "artifacts", None)),
            ("s3://mlflow", s3("mlflow", "", None)),
            (
                "s3://ml-flow.1/a/b/?profile=minio",
                s3("ml-flow.1", "a/b", Some("minio")),
            ),
            ("/mnt/mlflow", ArtifactLocation::Local("/mnt/mlflow".into())),
            ("file:///mnt/x", ArtifactLocation::Local("/mnt/x".into())),
        ] {
            assert_eq!(ArtifactLocation::parse(text).unwrap(), want, "{text}");
        }
        assert_eq!(
            ArtifactLocation::parse("s3://b-1/a/b/?profile=p")
                .unwrap()
                .to_string(),
            "s3://b-1/a/b?profile=p"
        );
        for bad in [
            "",
            "gs://b/x",
            "s3://B/x",
            "s3://bb1/a/../x",
            "s3://bb1/x?secret=abc",
            "s3://bb1/x?profile=",
        ] {
            let e = ArtifactLocation::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Input, "{bad}: {e}");
        }
        let e = ArtifactLocation::parse("s3://bb1/x?secret_key=hunter2").unwrap_err();
        assert!(e.to_string().contains("credentials never go"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
