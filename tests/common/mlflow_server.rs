//! Real MLflow servers for the tests: the cached venvs of `scripts/mlflow-env.sh` (2.6.0 and
//! 3.1.1) and a running `mlflow server`, stopped with its guard.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// (MLflow 2.6.0 venv, MLflow 3.1.1 venv), installed once by `scripts/mlflow-env.sh`.
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `mlflow server`.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    pub fn start(venv: &Path, backend: &str, artifacts: &Path) -> Self {
        let port = free_port();
        let path = format!(
            "{}:{}",
            venv.join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        let child = Command::new(venv.join("bin/mlflow"))
            .args([
                "server",
                "--backend-store-uri",
                backend,
                "--serve-artifacts",
                "--artifacts-destination",
            ])
            .arg(artifacts)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--workers",
                "1",
            ])
            .env("PATH", path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let ok = Command::new("curl")
                .args(["-sf", &format!("{url}/health")])
                .output()
                .map(|o| o.status.success());
            if ok.unwrap_or(false) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mlflow server {backend} did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        Server { child, url }
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
