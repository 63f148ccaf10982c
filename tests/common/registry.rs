//! The real OCI registry of `scripts/registry.sh` (Debian's docker-registry, distribution 2.8:
//! TLS from a private CA, htpasswd basic auth). Tests push their images through its HTTP API
//! (config blob, layer blob, manifest) with curl, a client that is not the tool's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use sha2::{Digest, Sha256};

const ENV_FILE: &str = "registry/registry.env";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Where the registry runs and how to reach it.
#[derive(Clone, Debug)]
pub struct Registry {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT` (what goes in image references)
    pub host: String,
    /// The private CA that signed the registry's certificate.
    pub ca_file: PathBuf,
    /// A CA that signed nothing of ours: "untrusted certificate" tests.
    pub other_ca_file: PathBuf,
    pub user: String,
    pub password: String,
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("AMLMIGRATE_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/amlmigrate"),
    }
}

/// One test's repository prefix, unique per process and call (`t<pid>-<n>`), so parallel tests
/// and earlier runs never see each other's tags.
pub fn unique_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// `repository:tag` → (repository, tag).
fn split(image: &str) -> (&str, &str) {
    image
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .unwrap_or_else(|| panic!("{image}: expected repository:tag"))
}

pub struct Http {
    pub code: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Registry {
    /// The running registry (started by `scripts/registry.sh`, which `scripts/test.sh` runs).
    /// Panics naming the fix when it is not there.
    pub fn get() -> Registry {
        let path = cache_dir().join(ENV_FILE);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "no test registry ({} missing): run scripts/registry.sh (scripts/test.sh does) to install and start Debian's docker-registry",
                path.display()
            )
        });
        let vars: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let var = |k: &str| -> String {
            vars.get(format!("AMLMIGRATE_TEST_REGISTRY_{k}").as_str())
                .unwrap_or_else(|| panic!("{}: no AMLMIGRATE_TEST_REGISTRY_{k}", path.display()))
                .to_string()
        };
        let r = Registry {
            url: var("URL"),
            host: var("HOST"),
            ca_file: var("CA").into(),
            other_ca_file: var("OTHER_CA").into(),
            user: var("USER"),
            password: var("PASSWORD"),
        };
        let probe = r.request("GET", "/v2/", &[], None, true);
        assert_eq!(
            probe.code, 200,
            "the test registry at {} does not answer (HTTP {}): run scripts/registry.sh to (re)start it",
            r.url, probe.code
        );
        r
    }

    /// One request with curl: `auth` sends the basic credentials, trusting only our CA.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        auth: bool,
    ) -> Http {
        self.request_as(
            method,
            path,
            headers,
            body,
            auth.then_some((&self.user, &self.password)),
            &self.ca_file,
        )
    }

    /// [`Registry::request`] with any credentials and CA file.
    pub fn request_as(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        auth: Option<(&str, &str)>,
        ca_file: &Path,
    ) -> Http {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.url)
        };
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-D", "-", "-o", "-", "--max-time", "20"])
            .arg("--cacert")
            .arg(ca_file);
        if method == "HEAD" {
            cmd.arg("-I");
        } else {
            cmd.args(["-X", method]);
        }
        if auth.is_some() {
            // Read from stdin (curl's config syntax): the password stays off command lines.
            cmd.args(["-K", "-"]);
        }
        for (k, v) in headers {
            cmd.arg("-H").arg(format!("{k}: {v}"));
        }
        let body_file = body.map(|b| {
            let f = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(f.path(), b).unwrap();
            f
        });
        if let Some(f) = &body_file {
            cmd.arg("--data-binary")
                .arg(format!("@{}", f.path().display()));
        }
        cmd.arg(&url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("curl");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            if let Some((u, p)) = auth {
                writeln!(stdin, "user = \"{u}:{p}\"").unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            return Http {
                code: 0,
                headers: BTreeMap::from([(
                    "curl-error".to_string(),
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                )]),
                body: vec![],
            };
        }
        parse_response(&out.stdout)
    }

    fn upload_blob(&self, repo: &str, blob: &[u8]) -> String {
        let digest = sha256(blob);
        let head = self.request(
            "HEAD",
            &format!("/v2/{repo}/blobs/{digest}"),
            &[],
            None,
            true,
        );
        if head.code == 200 {
            return digest;
        }
        let start = self.request(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            Some(b""),
            true,
        );
        assert_eq!(
            start.code,
            202,
            "starting a blob upload to {repo}: {}",
            start.text()
        );
        let loc = start
            .headers
            .get("location")
            .expect("upload Location")
            .clone();
        let loc = if loc.starts_with("https://") {
            loc
        } else {
            format!("{}{loc}", self.url)
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = self.request(
            "PUT",
            &format!("{loc}{sep}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            Some(blob),
            true,
        );
        assert_eq!(
            put.code,
            201,
            "uploading blob {digest} to {repo}: {}",
            put.text()
        );
        digest
    }

    /// Pushes a small image under `repository:tag` the way `nerdctl push` does (layer blob,
    /// config blob, OCI manifest); returns the manifest digest. Each image has content of its
    /// own (its name is in it), so deleting one never removes another tag.
    pub fn push_image(&self, image: &str) -> String {
        let (repo, tag) = split(image);
        let mut layer = tar::Builder::new(Vec::new());
        let content = format!("image {image}\n");
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        layer
            .append_data(&mut h, "etc/amlmigrate-test-image", content.as_bytes())
            .unwrap();
        let layer = layer.into_inner().unwrap();
        let layer_digest = self.upload_blob(repo, &layer);
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.ref.name": image}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        })
        .to_string();
        let config_digest = self.upload_blob(repo, config.as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        })
        .to_string();
        let r = self.request(
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("Content-Type", OCI_MANIFEST)],
            Some(manifest.as_bytes()),
            true,
        );
        assert_eq!(r.code, 201, "pushing the manifest of {image}: {}", r.text());
        sha256(manifest.as_bytes())
    }

    /// The manifest digest `repository:tag` resolves to, if it exists.
    pub fn digest(&self, image: &str) -> Option<String> {
        let (repo, tag) = split(image);
        let r = self.request(
            "HEAD",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("Accept", ACCEPT)],
            None,
            true,
        );
        match r.code {
            200 => r.headers.get("docker-content-digest").cloned(),
            404 => None,
            other => panic!("HEAD {image}: HTTP {other} {:?}", r.headers),
        }
    }

    /// Does `repository:tag` resolve?
    pub fn has(&self, image: &str) -> bool {
        self.digest(image).is_some()
    }

    /// Deletes the manifest `repository:tag` resolves to (the tag goes with it).
    pub fn delete(&self, image: &str) {
        let (repo, _) = split(image);
        if let Some(d) = self.digest(image) {
            let r = self.request(
                "DELETE",
                &format!("/v2/{repo}/manifests/{d}"),
                &[],
                None,
                true,
            );
            assert_eq!(r.code, 202, "deleting {image}: {}", r.text());
        }
    }
}

impl Http {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// curl's `-D - -o -` output: header blocks (one per response; the last one counts), then body.
fn parse_response(raw: &[u8]) -> Http {
    let mut rest = raw;
    let mut code = 0;
    let mut headers = BTreeMap::new();
    while rest.starts_with(b"HTTP/") {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
            .unwrap_or(rest.len());
        let block = String::from_utf8_lossy(&rest[..end]).into_owned();
        let mut lines = block.lines();
        code = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        rest = &rest[end..];
    }
    Http {
        code,
        headers,
        body: rest.to_vec(),
    }
}
