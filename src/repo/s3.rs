//! S3 (and S3-compatible: MinIO, Ceph, moto) repositories: where the endpoint, region and
//! credentials come from, and errors that name the bucket and endpoint, never the secret.
//!
//! Settings, first found wins:
//! - the standard AWS variables: `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`), `AWS_REGION` /
//!   `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`
//!   (and the web-identity / container variables `object_store` reads itself);
//! - the standard shared files for profile `AWS_PROFILE` (default `default`):
//!   `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`) for the keys, `~/.aws/config`
//!   (`AWS_CONFIG_FILE`) for `region` and `endpoint_url`. A profile of single sign-on,
//!   `credential_process` or an assumed role is refused by name (not read past).
//!
//! Addressing is path-style (`ENDPOINT/bucket/key`, what MinIO and most S3-compatible stores
//! want) unless `AMLMIGRATE_S3_PATH_STYLE=false`. An `http://` endpoint is allowed as given.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{ClientOptions, RetryConfig};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// What the S3 client was built from, for messages (never the secret itself).
#[derive(Debug, Clone)]
pub struct S3Target {
    pub bucket: String,
    pub endpoint: String,
    pub region: String,
    /// `BUCKET.ENDPOINT/KEY` rather than `ENDPOINT/BUCKET/KEY`.
    pub virtual_hosted: bool,
    /// Whether an endpoint was configured (else AWS's own for the region).
    pub custom_endpoint: bool,
    /// The secret access key, only to scrub it from any message that might echo it.
    secret: Option<Secret>,
}

impl S3Target {
    /// Removes the secret key from a message, should a server or library ever echo it, and
    /// any password an endpoint was given with (`AWS_ENDPOINT_URL=http://user:pw@host`), in
    /// every spelling a URL library might print it.
    pub fn scrub(&self, msg: String) -> String {
        let mut msg = match &self.secret {
            Some(s) if !s.is_empty() && msg.contains(s.expose()) => msg.replace(s.expose(), "***"),
            _ => msg,
        };
        if let Some(pw) = endpoint_password(&self.endpoint) {
            msg = msg.replace(&self.endpoint, &crate::secret::redact_url(&self.endpoint));
            let decoded = percent_encoding::percent_decode_str(&pw)
                .decode_utf8_lossy()
                .into_owned();
            let normalized = url::Url::parse(&self.endpoint)
                .ok()
                .and_then(|u| u.password().map(String::from));
            for form in [Some(pw), Some(decoded), normalized].into_iter().flatten() {
                if !form.is_empty() {
                    msg = msg.replace(&form, "***");
                }
            }
        }
        msg
    }

    /// The endpoint as messages show it: without a password it may hold.
    pub fn shown_endpoint(&self) -> String {
        crate::secret::redact_url(&self.endpoint)
    }
}

/// An endpoint the client can use: an http(s) URL with a host and a numeric port. The client
/// library panics on some malformed ones at the first request; here they are an input error
/// that shows the value without any password it holds.
fn check_endpoint(e: &str) -> Result<()> {
    let bad = |why: String| {
        Error::input(format!(
            "S3 endpoint {}: {why}; give it as http(s)://HOST[:PORT] in AWS_ENDPOINT_URL (or \
             endpoint_url in the AWS config file)",
            crate::secret::redact_url(e)
        ))
    };
    let u = url::Url::parse(e).map_err(|err| bad(format!("not a URL ({err})")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme {} is not http:// or https://",
            u.scheme()
        )));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    Ok(())
}

/// The password part of an endpoint's user-info, read the way [`crate::secret::redact_url`]
/// reads it (up to the last `@`), so a malformed endpoint is covered as well as a valid one.
fn endpoint_password(endpoint: &str) -> Option<String> {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let info = &rest[..rest.rfind('@')?];
    info.split_once(':').map(|(_, pw)| pw.to_string())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn home() -> Option<PathBuf> {
    env("HOME").map(PathBuf::from)
}

/// Sections of an INI file (`[name]` → key → value), as the AWS shared files are written.
fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

/// One profile's keys from the shared credentials and config files.
fn profile_settings(profile: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let config = env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws/config")));
    if let Some(text) = config.and_then(|p| std::fs::read_to_string(p).ok()) {
        let ini = parse_ini(&text);
        let name = if profile == "default" {
            "default".to_string()
        } else {
            format!("profile {profile}")
        };
        if let Some(s) = ini.get(&name) {
            out.extend(s.clone());
        }
    }
    let creds = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".aws/credentials")));
    if let Some(text) = creds.and_then(|p| std::fs::read_to_string(p).ok())
        && let Some(s) = parse_ini(&text).get(profile)
    {
        out.extend(s.clone());
    }
    out
}

/// Profile keys whose credentials come from somewhere this tool does not reach (single
/// sign-on, an external process, an assumed role). The SDK would use them before or instead of
/// any static keys beside them, so reading on without them would act as another identity, or
/// as none; aws-config implements them but brings ring and a second HTTP stack
/// (docs/ARCHITECTURE.md).
const UNIMPLEMENTED_KEYS: [&str; 8] = [
    "sso_session",
    "sso_start_url",
    "sso_account_id",
    "sso_role_name",
    "credential_process",
    "role_arn",
    "source_profile",
    "credential_source",
];

fn refuse_unimplemented_kind(name: &str, profile: &BTreeMap<String, String>) -> Result<()> {
    let found: Vec<&str> = UNIMPLEMENTED_KEYS
        .into_iter()
        .filter(|k| profile.contains_key(*k))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    Err(Error::input(format!(
        "AWS profile {name:?} gets its credentials through {} (single sign-on, \
         credential_process or an assumed role), which this tool does not implement; nothing \
         was sent. Export what the profile yields and run again: \
         eval \"$(aws configure export-credentials --profile {name} --format env)\" \
         (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), or choose a profile \
         with aws_access_key_id and aws_secret_access_key (AWS_PROFILE)",
        found.join(", ")
    )))
}

fn truthy(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Builds the S3 store for `bucket` from the environment and the shared AWS files.
pub fn build(bucket: &str) -> Result<(AmazonS3, S3Target)> {
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    build_from(
        bucket,
        AmazonS3Builder::from_env(),
        &profile,
        &profile_settings(&profile),
        true,
    )
}

/// Builds an S3 store for `bucket` from one profile of the shared files alone, ignoring the
/// AWS_* variables (an MLflow artifact store kept apart from the repository's S3). `None` when
/// neither file has the profile.
pub fn build_for_profile(bucket: &str, profile: &str) -> Option<Result<(AmazonS3, S3Target)>> {
    let settings = profile_settings(profile);
    (!settings.is_empty())
        .then(|| build_from(bucket, AmazonS3Builder::new(), profile, &settings, false))
}

fn build_from(
    bucket: &str,
    b: AmazonS3Builder,
    profile_name: &str,
    profile: &BTreeMap<String, String>,
    use_env: bool,
) -> Result<(AmazonS3, S3Target)> {
    let mut b = b.with_bucket_name(bucket);
    let aws_env = |name: &str| if use_env { env(name) } else { None };
    let get = |b: &AmazonS3Builder, k: AmazonS3ConfigKey| b.get_config_value(&k);
    // An empty variable is an unset one, as everywhere else here.
    let unset = |b: &AmazonS3Builder, k| get(b, k).is_none_or(|v| v.is_empty());
    let from_profile = unset(&b, AmazonS3ConfigKey::AccessKeyId)
        && unset(&b, AmazonS3ConfigKey::WebIdentityTokenFile);
    if from_profile {
        refuse_unimplemented_kind(profile_name, profile)?;
    }
    if from_profile
        && let (Some(id), Some(secret)) = (
            profile.get("aws_access_key_id"),
            profile.get("aws_secret_access_key"),
        )
    {
        b = b.with_access_key_id(id).with_secret_access_key(secret);
        if let Some(t) = profile.get("aws_session_token") {
            b = b.with_token(t);
        }
    }
    if aws_env("AWS_REGION").is_none()
        && aws_env("AWS_DEFAULT_REGION").is_none()
        && let Some(r) = profile.get("region")
    {
        b = b.with_region(r);
    }
    if get(&b, AmazonS3ConfigKey::Endpoint).is_none()
        && let Some(e) = aws_env("AWS_ENDPOINT_URL_S3")
            .or_else(|| aws_env("AWS_ENDPOINT_URL"))
            .or_else(|| profile.get("endpoint_url").cloned())
    {
        b = b.with_endpoint(e);
    }
    let endpoint = get(&b, AmazonS3ConfigKey::Endpoint);
    if let Some(e) = &endpoint {
        check_endpoint(e)?;
    }
    if let Some(v) = env("AMLMIGRATE_S3_PATH_STYLE") {
        let path_style = truthy(&v).ok_or_else(|| {
            Error::input(format!(
                "AMLMIGRATE_S3_PATH_STYLE={v}: expected true or false"
            ))
        })?;
        b = b.with_virtual_hosted_style_request(!path_style);
    }
    // Retry server errors and lost connections a few times, but give up on an unreachable
    // endpoint within a minute instead of the library's three. (Client options replace those
    // from the environment, so http:// is allowed here, after them.)
    let http = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"))
        || aws_env("AWS_ALLOW_HTTP").as_deref().and_then(truthy) == Some(true);
    b = b
        .with_retry(RetryConfig {
            max_retries: 4,
            retry_timeout: Duration::from_secs(60),
            ..Default::default()
        })
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(10))
                .with_timeout(Duration::from_secs(300))
                .with_allow_http(http),
        );
    let region = get(&b, AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
    let endpoint = endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let virtual_hosted =
        get(&b, AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref() == Some("true");
    let custom_endpoint = get(&b, AmazonS3ConfigKey::Endpoint).is_some();
    let target = S3Target {
        bucket: bucket.to_string(),
        endpoint: endpoint.clone(),
        region: region.clone(),
        virtual_hosted,
        custom_endpoint,
        secret: get(&b, AmazonS3ConfigKey::SecretAccessKey).map(Secret::new),
    };
    let store = b.build().map_err(|e| {
        Error::input(target.scrub(format!(
            "S3 repository s3://{bucket} at {endpoint}: cannot configure the client: {e}; check \
             AWS_ENDPOINT_URL, AWS_REGION and the credentials (AWS_ACCESS_KEY_ID / \
             AWS_SECRET_ACCESS_KEY or ~/.aws/credentials)"
        )))
    })?;
    Ok((store, target))
}

/// The S3 error code in a response body (`<Code>NoSuchBucket</Code>`).
fn error_code(e: &object_store::Error) -> Option<String> {
    let text = format!("{e}");
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(text[start..end].to_string())
}

/// Turns the first request's failure into an error that names the bucket, the endpoint and
/// the fix. `None` when the error is not one of those explained here.
pub fn classify(t: &S3Target, e: &object_store::Error) -> Option<Error> {
    let code = error_code(e);
    let (bucket, endpoint) = (&t.bucket, &t.endpoint);
    let creds = "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (or the \
                 ~/.aws/credentials profile) and AWS_REGION";
    let err = match (code.as_deref(), e) {
        (Some("NoSuchBucket"), _) => Error::input(format!(
            "S3 bucket {bucket} does not exist at {endpoint}: create it first (for example \
             `aws s3 mb s3://{bucket}`, or in the MinIO console), or correct --repo"
        )),
        (Some("AccessDenied"), _) => Error::Forbidden(format!(
            "S3 endpoint {endpoint} denied access to bucket {bucket} (AccessDenied): the \
             credentials are valid but lack a permission; grant s3:ListBucket, s3:GetObject, \
             s3:PutObject and s3:DeleteObject on the bucket"
        )),
        (
            Some(
                c @ ("InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "InvalidToken"
                | "ExpiredToken"
                | "InvalidClientTokenId"
                | "AuthorizationHeaderMalformed"),
            ),
            _,
        ) => Error::Connection(format!(
            "S3 endpoint {endpoint} rejected the credentials for bucket {bucket} ({c}); {creds}"
        )),
        (_, object_store::Error::PermissionDenied { .. })
        | (_, object_store::Error::Unauthenticated { .. }) => Error::Connection(format!(
            "S3 endpoint {endpoint} refused access to bucket {bucket} ({}); {creds}",
            code.as_deref().unwrap_or("HTTP 401/403")
        )),
        (_, object_store::Error::Generic { .. }) if code.is_none() => Error::Connection(format!(
            "cannot reach S3 endpoint {endpoint} for bucket {bucket}: {}; check AWS_ENDPOINT_URL \
             and that the endpoint is reachable from here",
            chain(e)
        )),
        _ => return None,
    };
    Some(match err {
        Error::Input(m) => Error::Input(t.scrub(m)),
        Error::Connection(m) => Error::Connection(t.scrub(m)),
        Error::Forbidden(m) => Error::Forbidden(t.scrub(m)),
        other => other,
    })
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_files_are_read_by_section() {
        let ini = parse_ini(
            "[default]\naws_access_key_id = AK\naws_secret_access_key=SK\n\n# c\n[profile x]\nregion = eu-west-1\n",
        );
        assert_eq!(ini["default"]["aws_access_key_id"], "AK");
        assert_eq!(ini["default"]["aws_secret_access_key"], "SK");
        assert_eq!(ini["profile x"]["region"], "eu-west-1");
    }

    #[test]
    fn scrub_removes_the_secret_from_messages() {
        let t = S3Target {
            bucket: "b".into(),
            endpoint: "http://e".into(),
            region: "us-east-1".into(),
            virtual_hosted: false,
            custom_endpoint: true,
            secret: Some(Secret::new("s3cr3t")),
        };
        assert_eq!(t.scrub("key s3cr3t here".into()), "key *** here");
    }

    #[test]
    fn an_endpoint_password_is_scrubbed_in_every_spelling() {
        let t = S3Target {
            bucket: "b".into(),
            endpoint: "http://AK:p%40ss w@h:9000".into(),
            region: "us-east-1".into(),
            virtual_hosted: false,
            custom_endpoint: true,
            secret: None,
        };
        let m = t.scrub(format!(
            "at {} GET http://AK:p%40ss%20w@h:9000/b (p@ss w)",
            t.endpoint
        ));
        assert!(!m.contains("ss w") && !m.contains("ss%20w"), "{m}");
        assert!(m.starts_with("at http://AK@h:9000 GET"), "{m}");
        assert_eq!(t.shown_endpoint(), "http://AK@h:9000");
    }
}
