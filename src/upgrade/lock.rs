//! Work on the cluster from one repository, one process at a time: an `upgrade run` and a
//! `recover` (which undo each other's writes) share one lock; rehearsals have their own. They are
//! the repository's locks (`repo::lock`: holder named, refreshed, stale when their process is
//! gone from this host or unrefreshed for [`LOCK_TTL`](crate::repo::lock::LOCK_TTL)), kept under
//! a folder of their own so that they never hold up, nor wait for, backups and prunes. A lock
//! left by a process that died on this host (kill -9, a crash) is taken over at once, so the same
//! command still resumes; a live holder's lock refuses the second command, naming it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::repo::Repository;
use crate::repo::lock::{LockKind, RepoLock};

/// Which work a lock is for: the folder of its lock objects and the command that holds it.
#[derive(Debug, Clone, Copy)]
pub struct Work {
    dir: &'static str,
    what: &'static str,
}

/// Writes to the cluster: the upgrade run.
pub const UPGRADE: Work = Work {
    dir: CLUSTER,
    what: "`amlmigrate upgrade run`",
};
/// Writes to the cluster, undoing the upgrade's: recover. One lock with the upgrade run's, so
/// that neither writes under the other.
pub const RECOVER: Work = Work {
    dir: CLUSTER,
    what: "`amlmigrate recover`",
};
/// `upgrade rehearse`: apart from the upgrade run's, so a rehearsal can run while an upgrade
/// waits for a person, yet two rehearsals of one repository never sweep each other's scratch
/// copies.
pub const REHEARSE: Work = Work {
    dir: "runs/.lock/rehearse",
    what: "`amlmigrate upgrade rehearse`",
};
const CLUSTER: &str = "runs/.lock/cluster";

pub struct RunLock(RepoLock);

impl RunLock {
    /// Takes the lock of `work`, or refuses at once naming the live holder: the work of the
    /// other lasts hours and often waits for a person, so waiting for it would look like a hang.
    pub async fn acquire(repo: &Repository, work: Work) -> Result<RunLock> {
        repo.lock_in(
            work.dir,
            LockKind::Exclusive,
            work.what,
            Duration::ZERO,
            &CancellationToken::new(),
        )
        .await
        .map(RunLock)
    }

    pub async fn release(self) {
        self.0.release().await;
    }
}
