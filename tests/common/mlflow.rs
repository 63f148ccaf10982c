//! Real MLflow 2.6.0 and 3.1.1 servers (venvs from scripts/mlflow-env.sh), the REST harness
//! (tests/mlflow/harness.py) and what the MLflow tests compare.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::gate::{announced_port, wait_for};

pub fn venvs() -> &'static (PathBuf, PathBuf) {
    static V: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    V.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mlflow-env.sh");
        let out = Command::new("bash").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = String::from_utf8(out.stdout).unwrap();
        let mut lines = s.lines();
        (lines.next().unwrap().into(), lines.next().unwrap().into())
    })
}

pub fn harness() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mlflow/harness.py")
}

/// A running `mlflow server`, stopped with the guard.
pub struct Server {
    child: Child,
    pub url: String,
    _log: tempfile::NamedTempFile,
}

impl Server {
    pub fn start(venv: &Path, backend: &str, artifacts: impl AsRef<OsStr>) -> Self {
        Self::start_with_env(venv, backend, artifacts, &[])
    }

    /// With extra environment (an S3 artifact store's endpoint and keys).
    pub fn start_with_env(
        venv: &Path,
        backend: &str,
        artifacts: impl AsRef<OsStr>,
        env: &[(&str, &str)],
    ) -> Self {
        let path = format!(
            "{}:{}",
            venv.join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(venv.join("bin/mlflow"))
            .args([
                "server",
                "--backend-store-uri",
                backend,
                "--serve-artifacts",
                "--artifacts-destination",
            ])
            .arg(artifacts)
            .args(["--host", "127.0.0.1", "--port", "0", "--workers", "1"])
            .env("PATH", path)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        // gunicorn binds port 0 and says which port it got.
        let port = announced_port(&mut child, log.path(), "Listening at:");
        let url = format!("http://127.0.0.1:{port}");
        wait_for(&format!("mlflow server {backend} to answer"), || {
            let ok = Command::new("curl")
                .args(["-sf", &format!("{url}/health")])
                .output()
                .map(|o| o.status.success());
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "mlflow server {backend} exited ({status}):\n{}",
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                );
            }
            ok.unwrap_or(false).then_some(())
        });
        Server {
            child,
            url,
            _log: log,
        }
    }
}

impl Server {
    /// POSTs JSON to `/api/2.0/mlflow/ENDPOINT`; the answer must be a success.
    pub fn post(&self, endpoint: &str, body: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args([
                "-sf",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
            ])
            .arg(body)
            .arg(format!("{}/api/2.0/mlflow/{endpoint}", self.url))
            .output()
            .unwrap();
        assert!(out.status.success(), "POST {endpoint}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // gunicorn has workers: stop the whole process group, and insist if it lingers.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &group])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

pub fn python(venv: &Path, args: &[&str]) {
    let out = Command::new(venv.join("bin/python"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn dump(server: &Server, out: &Path) -> serde_json::Value {
    python(
        &venvs().0,
        &[harness(), "dump", &server.url, out.to_str().unwrap()],
    );
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

pub fn schema(db: &str) -> String {
    let out = Command::new("pg_dump")
        .args([
            "-h127.0.0.1",
            "-Upostgres",
            "-s",
            "--no-owner",
            "--no-privileges",
            db,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
                && !l.starts_with("-- Dumped")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every file under `dir` with its bytes.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(
                    e.path().strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    out
}

/// A MySQL database with MLflow 2.6.0's schema (created by a real 2.6.0 server) and one run
/// with a short metric history, for tests about connections rather than content.
pub fn small_mlflow_26_db(tag: &str) -> super::TestDb {
    let db = super::TestDb::create(tag);
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &venvs().0,
        &format!("mysql+pymysql://root@127.0.0.1:3306/{}", db.name),
        tmp.path(),
    );
    let post = |endpoint: &str, body: &str| server.post(endpoint, body);
    let run = post("runs/create", r#"{"experiment_id":"0","start_time":1}"#);
    let id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    for step in 0..5 {
        post(
            "runs/log-metric",
            &format!(
                r#"{{"run_id":"{id}","key":"loss","value":{step}.5,"timestamp":{step},"step":{step}}}"#
            ),
        );
    }
    db
}
