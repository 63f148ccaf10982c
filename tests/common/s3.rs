//! A moto S3 server (PyPI `moto[server]`, installed by scripts/moto.sh) on a free loopback port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::gate::announced_port;
use super::{Run, amlmigrate_env};

pub const KEY_ID: &str = "AKIAAMLMIGRATETEST01";
pub const SECRET: &str = "amlmigrate-test-secret-never-printed";

/// A moto S3 server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    port: u16,
    _log: tempfile::NamedTempFile,
}

fn moto_server() -> PathBuf {
    let root = std::env::var("AMLMIGRATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/amlmigrate")
        });
    let bin = root.join("venv-moto/bin/moto_server");
    if !bin.exists() {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/moto.sh");
        let st = Command::new(script).stdout(Stdio::null()).status().unwrap();
        assert!(st.success(), "scripts/moto.sh failed");
    }
    bin
}

/// The moto venv's python, which has boto3 (for signed reads: moto refuses unsigned GETs).
pub fn python() -> PathBuf {
    moto_server().with_file_name("python")
}

impl Moto {
    pub fn start() -> Moto {
        Self::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Moto {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(moto_server());
        cmd.args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let port = announced_port(&mut child, log.path(), "Running on");
        Moto {
            child,
            port,
            _log: log,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (object_store cannot).
    pub fn bucket(&self, name: &str) {
        let out = Command::new("curl")
            .args(["-sf", "-X", "PUT", &format!("{}/{name}", self.endpoint())])
            .output()
            .unwrap();
        assert!(out.status.success(), "creating bucket {name}: {out:?}");
    }

    /// The ETag of an object: a multipart upload's ends in `-<parts>`.
    pub fn etag(&self, bucket: &str, key: &str) -> String {
        let out = Command::new("curl")
            .args(["-sfI", &format!("{}/{bucket}/{key}", self.endpoint())])
            .output()
            .unwrap();
        assert!(out.status.success(), "HEAD {key}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("etag:")
                    .then(|| l[5..].trim().trim_matches('"').to_string())
            })
            .unwrap()
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
            // The tests must not pick up the machine's own AWS profile.
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
        ]
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = amlmigrate_env(args, &env);
        assert!(
            !r.all().contains(SECRET),
            "the secret key leaked into the output of {args:?}"
        );
        r
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "amlmigrate {args:?} failed: {r:?}");
        r.stdout.trim().to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
