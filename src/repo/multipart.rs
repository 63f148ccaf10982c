//! Incomplete S3 multipart uploads under the repository's `snapshots/` and `data/`: a backup
//! killed while uploading a part or a pack leaves one, which S3 keeps (and bills) until someone aborts it. `prune`
//! aborts those older than a day; a younger one may belong to a backup that is still running.
//!
//! object_store can abort an upload but not list them, so the listing is one SigV4-signed
//! `GET ?uploads` with the credentials object_store resolved (keys, profile, web identity).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use object_store::aws::AwsAuthorizer;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::{Location, Repository, s3};
use crate::error::{Error, Result};

/// How old an incomplete upload must be before prune aborts it (as for uncommitted snapshots).
pub const MIN_AGE_HOURS: i64 = super::LEFTOVER_AGE_HOURS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
    pub initiated: DateTime<Utc>,
}

/// What prune did about incomplete uploads.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UploadCleanup {
    /// Older than a day: aborted (or, in a dry run, would be).
    pub aborted: usize,
    /// Younger: left to the backup that may still be writing them.
    pub kept_young: usize,
    /// Why the cleanup stopped (a store without the API, a missing permission); the snapshots
    /// were pruned all the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Splits uploads into those to abort (older than [`MIN_AGE_HOURS`] at `now`) and the rest.
pub fn stale(uploads: Vec<Upload>, now: DateTime<Utc>) -> (Vec<Upload>, Vec<Upload>) {
    uploads
        .into_iter()
        .partition(|u| now - u.initiated >= Duration::hours(MIN_AGE_HOURS))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListResult {
    #[serde(default)]
    upload: Vec<XmlUpload>,
    #[serde(default)]
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlUpload {
    key: String,
    upload_id: String,
    initiated: String,
}

impl Repository {
    /// [`Repository::abort_stale_uploads`] for prune: a failure is recorded in the result
    /// instead of failing a prune whose snapshots are already removed.
    pub async fn clean_stale_uploads(
        &self,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Option<UploadCleanup> {
        match self.abort_stale_uploads(now, dry_run).await {
            Ok(done) => done,
            Err(e) => Some(UploadCleanup {
                error: Some(crate::error::chain_text(&e)),
                ..Default::default()
            }),
        }
    }

    /// Aborts the incomplete multipart uploads under this repository's `snapshots/` and `data/` that are
    /// older than a day. `None` for a folder repository (no such thing there).
    pub async fn abort_stale_uploads(
        &self,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Option<UploadCleanup>> {
        let (Location::S3 { bucket, prefix }, Some(target)) = (&self.loc, &self.s3) else {
            return Ok(None);
        };
        let (store, _) = s3::build(bucket)?;
        // Parts of format 1 stream into snapshots/, packs of format 2 into data/: the two places
        // a backup uploads in several pieces. Nothing else under the bucket is touched.
        let mut uploads = Vec::new();
        for folder in ["snapshots/", "data/"] {
            let under = if prefix.is_empty() {
                folder.to_string()
            } else {
                format!("{prefix}/{folder}")
            };
            uploads.extend(list_uploads(&store, target, &under).await?);
        }
        let (old, young) = stale(uploads, now);
        let mut out = UploadCleanup {
            kept_young: young.len(),
            ..Default::default()
        };
        for u in old {
            if !dry_run {
                let path = Path::parse(&u.key).map_err(|e| {
                    Error::other(format!(
                        "incomplete upload {} of s3://{bucket}: unusable key ({e})",
                        u.key
                    ))
                })?;
                store
                    .abort_multipart(&path, &u.upload_id)
                    .await
                    .map_err(|e| {
                        Error::Connection(target.scrub(format!(
                            "aborting the incomplete upload of s3://{bucket}/{} at {}: {e}; \
                             grant s3:AbortMultipartUpload on the bucket",
                            u.key, target.endpoint
                        )))
                    })?;
            }
            out.aborted += 1;
        }
        Ok(Some(out))
    }
}

/// Every incomplete upload whose key starts with `prefix`, all pages.
async fn list_uploads(
    store: &object_store::aws::AmazonS3,
    t: &s3::S3Target,
    prefix: &str,
) -> Result<Vec<Upload>> {
    let cred = store.credentials().get_credential().await.map_err(|e| {
        Error::Connection(t.scrub(format!(
            "S3 endpoint {}: cannot get credentials for bucket {}: {e}",
            t.endpoint, t.bucket
        )))
    })?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| Error::other(format!("building the S3 client: {e}")))?;
    let (base, path) = if t.virtual_hosted {
        let base = if t.custom_endpoint {
            t.endpoint.trim_end_matches('/').to_string()
        } else {
            format!("https://{}.s3.{}.amazonaws.com", t.bucket, t.region)
        };
        (base, "/".to_string())
    } else {
        (
            t.endpoint.trim_end_matches('/').to_string(),
            format!("/{}", t.bucket),
        )
    };
    let mut out = Vec::new();
    let mut markers: Option<(String, String)> = None;
    loop {
        let mut query = BTreeMap::from([
            ("prefix".to_string(), prefix.to_string()),
            ("uploads".to_string(), String::new()),
        ]);
        if let Some((k, u)) = &markers {
            query.insert("key-marker".into(), k.clone());
            query.insert("upload-id-marker".into(), u.clone());
        }
        let query = query
            .iter()
            .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let url = url::Url::parse(&format!("{base}{path}?{query}")).map_err(|e| {
            Error::input(format!(
                "S3 endpoint {}: not a URL ({e})",
                t.shown_endpoint()
            ))
        })?;
        let mut signed =
            object_store::client::HttpRequest::new(object_store::client::HttpRequestBody::empty());
        *signed.uri_mut() = url.as_str().parse().map_err(|e| {
            Error::input(format!(
                "S3 endpoint {}: not a URL ({e})",
                t.shown_endpoint()
            ))
        })?;
        AwsAuthorizer::new(&cred, "s3", &t.region)
            .try_authorize(&mut signed, None)
            .map_err(|e| Error::other(format!("signing the S3 request: {e}")))?;
        let mut req = client.get(url.as_str());
        for (k, v) in signed.headers() {
            req = req.header(k, v);
        }
        let fail = |what: String| {
            Error::Connection(t.scrub(format!(
                "listing incomplete uploads of s3://{}/{prefix} at {}: {what}; grant \
                 s3:ListBucketMultipartUploads on the bucket",
                t.bucket, t.endpoint
            )))
        };
        let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}: {}", body.trim())));
        }
        let page: ListResult =
            quick_xml::de::from_str(&body).map_err(|e| fail(format!("unreadable answer ({e})")))?;
        for u in page.upload {
            let initiated = DateTime::parse_from_rfc3339(&u.initiated)
                .map_err(|e| fail(format!("upload {} has no valid time ({e})", u.key)))?
                .with_timezone(&Utc);
            out.push(Upload {
                key: u.key,
                upload_id: u.upload_id,
                initiated,
            });
        }
        match (
            page.is_truncated,
            page.next_key_marker,
            page.next_upload_id_marker,
        ) {
            (true, Some(k), Some(u)) if markers.as_ref() != Some(&(k.clone(), u.clone())) => {
                markers = Some((k, u));
            }
            _ => return Ok(out),
        }
    }
}

/// AWS's URI encoding: unreserved characters as they are, every other byte `%XX` (the signer
/// decodes the query and re-encodes it the same way, so what is signed is what is sent).
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uploads_older_than_a_day_are_stale() {
        let now: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
        let up = |h: i64| Upload {
            key: format!("snapshots/x/parts/{h}"),
            upload_id: h.to_string(),
            initiated: now - Duration::hours(h),
        };
        let (old, young) = stale(vec![up(1), up(23), up(24), up(48)], now);
        assert_eq!(
            old.iter().map(|u| u.upload_id.as_str()).collect::<Vec<_>>(),
            ["24", "48"]
        );
        assert_eq!(young.len(), 2);
    }
}
