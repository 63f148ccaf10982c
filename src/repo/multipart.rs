//! Incomplete S3 multipart uploads under the repository's `snapshots/` and `data/`: a backup
//! killed while uploading a part or a pack leaves one, which S3 keeps (and bills) until someone aborts it. `prune`
//! aborts those older than a day; a younger one may belong to a backup that is still running.
//!
//! object_store can abort an upload but not list them, so the listing is one SigV4-signed
//! `GET ?uploads` with the credentials object_store resolved (keys, profile, web identity).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Location, Repository, s3};
use crate::error::{Error, Result};

/// How old an incomplete upload must be before prune aborts it (as for uncommitted snapshots).
pub const MIN_AGE_HOURS: i64 = super::LEFTOVER_AGE_HOURS;
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

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
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(Error::input(format!(
                    "S3 endpoint {} has no host",
                    t.shown_endpoint()
                )));
            }
        };
        let headers = sigv4_headers(
            &Request {
                method: "GET",
                host: &host,
                path: url.path(),
                query: &query,
                region: &t.region,
                now: Utc::now(),
            },
            &cred.key_id,
            &cred.secret_key,
            cred.token.as_deref(),
        );
        let mut req = client.get(url.as_str());
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
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

/// AWS's URI encoding: unreserved characters as they are, every other byte `%XX`.
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

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

struct Request<'a> {
    method: &'a str,
    host: &'a str,
    /// Already URI-encoded.
    path: &'a str,
    /// Canonical: sorted, encoded.
    query: &'a str,
    region: &'a str,
    now: DateTime<Utc>,
}

/// The headers of a SigV4-signed request without a body (Signature Version 4, service s3).
fn sigv4_headers(
    r: &Request<'_>,
    key_id: &str,
    secret: &str,
    token: Option<&str>,
) -> Vec<(String, String)> {
    let amz_date = r.now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let mut headers = vec![
        ("host".to_string(), r.host.to_string()),
        ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    if let Some(t) = token {
        headers.push(("x-amz-security-token".to_string(), t.to_string()));
    }
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed}\n{EMPTY_SHA256}",
        r.method, r.path, r.query
    );
    let scope = format!("{date}/{}/s3/aws4_request", r.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, r.region.as_bytes());
    let k = hmac(&k, b"s3");
    let k = hmac(&k, b"aws4_request");
    let signature = hex::encode(hmac(&k, to_sign.as_bytes()));
    headers.retain(|(k, _)| k != "host");
    headers.push((
        "authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, \
             Signature={signature}"
        ),
    ));
    headers
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

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex::encode(hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signature_matches_the_aws_documentation_example() {
        // AWS SigV4 docs, "Example: GET Bucket Lifecycle" style request with the documented
        // example credentials: the signing key derivation and canonical form are what S3 checks.
        let r = Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/",
            query: "max-keys=2&prefix=J",
            region: "us-east-1",
            now: "2013-05-24T00:00:00Z".parse().unwrap(),
        };
        let h = sigv4_headers(
            &r,
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
        );
        let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn uri_encoding_leaves_only_unreserved_characters() {
        assert_eq!(uri_encode("a/b c~_.-"), "a%2Fb%20c~_.-");
    }
}
