//! Repository locks, as restic does them, on any object store: create-only lock objects
//! `locks/<time>-<random>.json` with an expiry that their holder refreshes.
//!
//! Backups and readers take shared locks, prune an exclusive one: prune removes packs that no
//! committed snapshot references, and a running backup's packs are such packs until it commits
//! (the classic race: a backup reusing a chunk that prune deletes). A taker creates its lock
//! first and lists second, so of two takers the later one always sees the earlier:
//! - shared: another live exclusive lock → remove ours, wait, try again;
//! - exclusive: another live exclusive lock → remove ours, wait, try again; live shared locks →
//!   keep ours (new shared takers now back off) and wait until they are gone.
//!
//! A lock not refreshed for [`LOCK_TTL`], or one of this host whose process is gone, is stale
//! and ignored (and removed by the next taker, or by `repo locks --remove-stale`). A holder
//! whose refreshes failed for that long stops before it commits anything. A taker that has to
//! wait says who holds the lock, and stops at once when cancelled (Ctrl-C).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Repository;
use crate::error::{Error, Result};

/// Where the repository's reader and prune locks live.
const LOCKS: &str = "locks";

/// How long a lock lives without a refresh.
pub const LOCK_TTL: Duration = Duration::from_secs(5 * 60);
const REFRESH: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    Shared,
    Exclusive,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockFile {
    pub kind: LockKind,
    /// `backup`, `prune`, `restore` …
    pub what: String,
    pub hostname: String,
    pub pid: u32,
    pub created: chrono::DateTime<Utc>,
    pub expires: chrono::DateTime<Utc>,
}

/// A lock object as `repo locks` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LockInfo {
    /// `locks/<name>`.
    pub object: String,
    #[serde(flatten)]
    pub lock: LockFile,
    /// Why it is stale (its process is gone), if it is.
    pub stale: Option<String>,
}

impl LockFile {
    /// Why this lock no longer protects anything: not refreshed in time, or its process, on
    /// this very host, is gone.
    fn stale(&self, now: chrono::DateTime<Utc>) -> Option<String> {
        if self.expires < now {
            return Some(format!(
                "not refreshed since {} (expired)",
                (self.expires - chrono::Duration::from_std(LOCK_TTL).expect("ttl"))
                    .format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
        if self.pid != 0
            && !self.hostname.is_empty()
            && self.hostname == hostname()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
        {
            return Some(format!(
                "process {} on this host ({}) is gone",
                self.pid, self.hostname
            ));
        }
        None
    }

    /// "prune on host-a (pid 42) holds an exclusive lock since …".
    fn holder(&self, object: &str) -> String {
        format!(
            "{} on {} (pid {}) holds {} lock {object} since {}, refreshed until {}",
            self.what,
            self.hostname,
            self.pid,
            match self.kind {
                LockKind::Shared => "a shared",
                LockKind::Exclusive => "the exclusive",
            },
            self.created.format("%Y-%m-%d %H:%M:%S UTC"),
            self.expires.format("%Y-%m-%d %H:%M:%S UTC"),
        )
    }
}

/// A held lock. Release it with [`RepoLock::release`]; dropping it removes it in the background.
pub struct RepoLock {
    repo: Repository,
    path: Path,
    refresher: tokio::task::JoinHandle<()>,
    /// Unix seconds until which the lock is known to be valid.
    valid_until: Arc<AtomicI64>,
    released: bool,
}

impl RepoLock {
    /// Fails when the lock may have expired (its refreshes failed): prune may have run.
    pub fn check(&self) -> Result<()> {
        let margin = REFRESH.as_secs() as i64;
        if Utc::now().timestamp() + margin > self.valid_until.load(Ordering::SeqCst) {
            return Err(Error::Interrupted(format!(
                "the lock on {} could not be refreshed for {} s; stopping before anything is committed",
                self.repo.location,
                LOCK_TTL.as_secs()
            )));
        }
        Ok(())
    }

    pub async fn release(mut self) {
        self.released = true;
        self.refresher.abort();
        let _ = self.repo.store.delete(&self.path).await;
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.refresher.abort();
        let (store, path) = (self.repo.store.clone(), self.path.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = store.delete(&path).await;
            });
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

fn body(kind: LockKind, what: &str, created: chrono::DateTime<Utc>) -> (Vec<u8>, i64) {
    let expires = Utc::now() + chrono::Duration::from_std(LOCK_TTL).expect("ttl");
    let f = LockFile {
        kind,
        what: what.to_string(),
        hostname: hostname(),
        pid: std::process::id(),
        created,
        expires,
    };
    (
        serde_json::to_vec_pretty(&f).expect("lock serializes"),
        expires.timestamp(),
    )
}

impl Repository {
    /// Takes a lock, waiting up to `wait` for a conflicting one to go; `cancel` stops the wait
    /// at once (the lock taken so far is removed).
    pub async fn lock(
        &self,
        kind: LockKind,
        what: &str,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<RepoLock> {
        self.lock_in(LOCKS, kind, what, wait, cancel).await
    }

    /// [`Repository::lock`] among the lock objects under `dir` only: locks of another kind of
    /// work (an upgrade run against a recovery) that neither block nor are blocked by the
    /// repository's readers and prunes.
    pub async fn lock_in(
        &self,
        dir: &str,
        kind: LockKind,
        what: &str,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<RepoLock> {
        let started = std::time::Instant::now();
        let mut told = false;
        loop {
            let created = Utc::now();
            let mut rnd = [0u8; 6];
            rand::fill(&mut rnd);
            let name = format!(
                "{}-{}.json",
                created.format("%Y%m%dT%H%M%S%.3fZ"),
                hex::encode(rnd)
            );
            let path = Path::from(dir).join(name.as_str());
            let (bytes, until) = body(kind, what, created);
            self.store
                .put_opts(
                    &path,
                    PutPayload::from(bytes),
                    PutOptions::from(PutMode::Create),
                )
                .await
                .map_err(|e| self.store_err(format!("creating lock locks/{name}"), e))?;
            loop {
                let others = self.live_locks(dir, &name).await?;
                let exclusive = others.iter().find(|(_, l)| l.kind == LockKind::Exclusive);
                let shared = others.iter().find(|(_, l)| l.kind == LockKind::Shared);
                let blocker = match kind {
                    LockKind::Shared => exclusive,
                    LockKind::Exclusive => exclusive.or(shared),
                };
                let Some((other_name, other)) = blocker else {
                    let valid_until = Arc::new(AtomicI64::new(until));
                    let refresher = tokio::spawn(refresh(
                        self.clone(),
                        path.clone(),
                        kind,
                        what.to_string(),
                        created,
                        valid_until.clone(),
                    ));
                    return Ok(RepoLock {
                        repo: self.clone(),
                        path,
                        refresher,
                        valid_until,
                        released: false,
                    });
                };
                let timed_out = started.elapsed() >= wait;
                // An exclusive taker keeps its lock while shared holders finish, so that new
                // shared takers back off and it is not starved.
                let keep = kind == LockKind::Exclusive && exclusive.is_none() && !timed_out;
                if !keep {
                    let _ = self.store.delete(&path).await;
                }
                let holder = other.holder(&format!("{dir}/{other_name}"));
                if timed_out {
                    let removal = if dir == LOCKS {
                        format!(
                            "`amlmigrate repo locks --remove-stale --repo {}` removes its lock",
                            self.location
                        )
                    } else {
                        format!("deleting {dir}/{other_name} from the repository removes its lock")
                    };
                    return Err(Error::Refused(format!(
                        "{} is in use: {holder}; try again later. If that process is gone, \
                         {removal} (it also expires by itself {} s after its last refresh)",
                        self.location,
                        LOCK_TTL.as_secs()
                    )));
                }
                if !told {
                    told = true;
                    tracing::warn!(
                        repository = self.location,
                        holder = other.what,
                        hostname = other.hostname,
                        pid = other.pid,
                        "{what}: waiting for {}: {holder}; waiting up to {} (Ctrl-C stops)",
                        self.location,
                        humantime::format_duration(Duration::from_secs(wait.as_secs()))
                    );
                }
                let jitter = u64::from(rand::random::<u16>() % 400);
                let pause = Duration::from_millis(200 + jitter);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = cancel.cancelled() => {
                        if keep {
                            let _ = self.store.delete(&path).await;
                        }
                        return Err(Error::Interrupted(format!(
                            "{what}: interrupted while waiting for {}: {holder}",
                            self.location
                        )));
                    }
                }
                if !keep {
                    break;
                }
            }
        }
    }

    /// Every lock object but `skip`, read: its listing, name and what it holds (an error when
    /// it is not a lock). One released between the listing and the read is left out.
    async fn read_locks(
        &self,
        dir: &str,
        skip: Option<&str>,
    ) -> Result<
        Vec<(
            object_store::ObjectMeta,
            String,
            serde_json::Result<LockFile>,
        )>,
    > {
        let metas: Vec<_> = self
            .store
            .list(Some(&Path::from(dir)))
            .try_collect()
            .await
            .map_err(|e| self.store_err("listing locks", e))?;
        let mut out = Vec::new();
        for meta in metas {
            let name = meta.location.filename().unwrap_or_default().to_string();
            if skip == Some(name.as_str()) {
                continue;
            }
            let got = match self.store.get(&meta.location).await {
                Ok(g) => g.bytes().await,
                Err(e) => Err(e),
            };
            let bytes = match got {
                Ok(b) => b,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.store_err(format!("reading lock {dir}/{name}"), e)),
            };
            let lock = serde_json::from_slice::<LockFile>(&bytes);
            out.push((meta, name, lock));
        }
        Ok(out)
    }

    /// Locks other than `own` that have not expired; expired ones are removed on the way.
    async fn live_locks(&self, dir: &str, own: &str) -> Result<Vec<(String, LockFile)>> {
        let now = Utc::now();
        let mut out = Vec::new();
        for (meta, name, lock) in self.read_locks(dir, Some(own)).await? {
            let Ok(lock) = lock else {
                // Half-written by a store without atomic puts: young ones count as shared.
                if now - meta.last_modified < chrono::Duration::seconds(60) {
                    out.push((name, unreadable(&meta)));
                }
                continue;
            };
            if let Some(why) = lock.stale(now) {
                tracing::info!("removing stale lock {dir}/{name}: {why}");
                let _ = self.store.delete(&meta.location).await;
                continue;
            }
            out.push((name, lock));
        }
        Ok(out)
    }

    /// Every lock object, with whether it is stale; `remove_stale` removes the stale ones
    /// (as restic's `unlock` does) and returns what it found before.
    pub async fn locks(&self, remove_stale: bool) -> Result<Vec<LockInfo>> {
        let now = Utc::now();
        let mut out = Vec::new();
        for (meta, name, lock) in self.read_locks(LOCKS, None).await? {
            let (lock, stale) = match lock {
                Ok(l) => {
                    let stale = l.stale(now);
                    (l, stale)
                }
                Err(e) => {
                    let old = now - meta.last_modified > chrono::Duration::seconds(60);
                    (unreadable(&meta), old.then(|| format!("not a lock ({e})")))
                }
            };
            if remove_stale && stale.is_some() {
                match self.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        return Err(self.store_err(format!("removing lock locks/{name}"), e));
                    }
                }
            }
            out.push(LockInfo {
                object: format!("locks/{name}"),
                lock,
                stale,
            });
        }
        Ok(out)
    }
}

/// What an unreadable lock object stands for: a shared lock from its writing time.
fn unreadable(meta: &object_store::ObjectMeta) -> LockFile {
    LockFile {
        kind: LockKind::Shared,
        what: "(unreadable lock)".into(),
        hostname: String::new(),
        pid: 0,
        created: meta.last_modified,
        expires: meta.last_modified,
    }
}

async fn refresh(
    repo: Repository,
    path: Path,
    kind: LockKind,
    what: String,
    created: chrono::DateTime<Utc>,
    valid_until: Arc<AtomicI64>,
) {
    loop {
        tokio::time::sleep(REFRESH).await;
        let (bytes, until) = body(kind, &what, created);
        if repo.store.put(&path, PutPayload::from(bytes)).await.is_ok() {
            valid_until.store(until, Ordering::SeqCst);
        }
    }
}
