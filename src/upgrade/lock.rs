//! One `upgrade run` per repository at a time: a create-only lock object. A lock left by a
//! process that died on this host (kill -9, a crash) is taken over, so the same command still
//! resumes; a lock of a live process, or of another host, refuses the run.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::Repository;

const DIR: &str = ".lock";
const FILE: &str = "upgrade.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Holder {
    host: Option<String>,
    pid: u32,
    since: chrono::DateTime<chrono::Utc>,
}

pub struct RunLock {
    repo: Repository,
    file: &'static str,
}

/// The lock of `upgrade rehearse` (and `recover`): apart from the upgrade run's, so a rehearsal
/// can run while an upgrade waits for a person, yet two rehearsals of one repository never
/// sweep each other's scratch copies.
pub const REHEARSE: (&str, &str) = ("rehearse.json", "`amlmigrate upgrade rehearse`");
pub const RECOVER: (&str, &str) = ("recover.json", "`amlmigrate recover`");
const UPGRADE: (&str, &str) = (FILE, "`amlmigrate upgrade run`");

impl RunLock {
    pub async fn acquire(repo: &Repository) -> Result<RunLock> {
        Self::acquire_as(repo, UPGRADE).await
    }

    /// A lock of its own for another kind of work (`(file, what)`).
    pub async fn acquire_as(
        repo: &Repository,
        (file, what): (&'static str, &'static str),
    ) -> Result<RunLock> {
        let me = Holder {
            host: crate::backup::hostname(),
            pid: std::process::id(),
            since: chrono::Utc::now(),
        };
        let body = serde_json::to_vec(&me).expect("a lock holder serializes");
        for _ in 0..2 {
            if repo.create_run_file(DIR, file, body.clone()).await? {
                return Ok(RunLock {
                    repo: repo.clone(),
                    file,
                });
            }
            let held = repo.run_file(DIR, file).await?.unwrap_or_default();
            let Ok(holder) = serde_json::from_slice::<Holder>(&held) else {
                // Unreadable: written by something else; leave it to a person.
                return Err(busy(repo, None, file, what));
            };
            if !dead_here(&holder, me.host.as_deref()) {
                return Err(busy(repo, Some(&holder), file, what));
            }
            // The holder died on this host: its run resumes here.
            repo.delete_run_file(DIR, file).await?;
        }
        Err(busy(repo, None, file, what))
    }

    pub async fn release(self) {
        let _ = self.repo.delete_run_file(DIR, self.file).await;
    }
}

fn dead_here(h: &Holder, my_host: Option<&str>) -> bool {
    h.host.as_deref() == my_host && !std::path::Path::new(&format!("/proc/{}", h.pid)).exists()
}

fn busy(repo: &Repository, h: Option<&Holder>, file: &str, what: &str) -> Error {
    let who = match h {
        Some(h) => format!(
            " since {} (host {}, pid {})",
            h.since.format("%Y-%m-%d %H:%M:%S UTC"),
            h.host.as_deref().unwrap_or("unknown"),
            h.pid
        ),
        None => String::new(),
    };
    Error::Refused(format!(
        "another {what} is working on repository {}{who}; wait for it to end \
         (`amlmigrate upgrade status`), or if that process is gone for good, delete \
         runs/{DIR}/{file} from the repository and run again",
        repo.location()
    ))
}
