//! A stateful fake Kubernetes API server over real HTTP, for tests (see README.md).
//!
//! ```no_run
//! let fk = fakekube::FakeKube::start();
//! let dir = std::env::temp_dir();
//! let kubeconfig = fk.write_kubeconfig(&dir, fakekube::FakeKube::ADMIN_TOKEN);
//! // run `kubectl --kubeconfig <kubeconfig> get ns`, or the binary under test
//! # let _ = kubeconfig;
//! ```

pub mod captain;
pub mod controllers;
mod discovery;
pub mod forms;
mod openapi;
pub mod operator;
mod patch;
pub mod plugins;
mod rbac;
mod schema;
mod select;
mod server;
pub mod status;
mod store;
mod table;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde_json::Value;

pub use crate::operator::AmlOperator;
use crate::store::{Store, WriteOpts};

/// One HTTP request the server received.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The raw query string (without `?`).
    pub query: String,
    /// The authenticated user ("" when the token was missing or unknown).
    pub user: String,
    pub content_type: String,
    pub user_agent: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// A stored object changed (what a watch would report).
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: ChangeKind,
    pub object: Value,
}

impl Change {
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or("")
    }
    pub fn kind_name(&self) -> &str {
        self.object["kind"].as_str().unwrap_or("")
    }
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or("")
    }
    /// True for kind `kind` in API group `group` (any version).
    pub fn is(&self, group: &str, kind: &str) -> bool {
        let g = self
            .api_version()
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("");
        g == group && self.kind_name() == kind
    }
}

type Hook = dyn Fn(&Change, &Handle) + Send + Sync;
type RequestHook = dyn Fn(&RequestRecord, &Handle) + Send + Sync;

pub(crate) struct Shared {
    store: Mutex<Store>,
    hooks: RwLock<Vec<Arc<Hook>>>,
    request_hooks: RwLock<Vec<Arc<RequestHook>>>,
    runtime: tokio::runtime::Handle,
    addr: SocketAddr,
}

/// Access to the fake's state; usable from hooks and timers (no lock is held while they run).
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

/// The running server. Dropping it stops it.
pub struct FakeKube {
    handle: Handle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::ops::Deref for FakeKube {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl FakeKube {
    pub const ADMIN_TOKEN: &'static str = "fake-admin-token";

    /// Starts on 127.0.0.1:<free port> with the built-in kinds and namespaces `default` and
    /// `kube-system`; token [`FakeKube::ADMIN_TOKEN`] is user `admin`.
    pub fn start() -> FakeKube {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("fakekube")
            .build()
            .expect("tokio runtime");
        let (tx, _) = tokio::sync::broadcast::channel(4096);
        let mut store = Store::new(tx);
        store
            .tokens
            .insert(Self::ADMIN_TOKEN.into(), "admin".into());
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            hooks: RwLock::new(vec![]),
            request_hooks: RwLock::new(vec![]),
            runtime: runtime.handle().clone(),
            addr,
        });
        let handle = Handle { shared };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let h = handle.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("fakekube-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    ready_tx.send(()).ok();
                    server::serve(listener, h, stop_rx).await;
                });
                runtime.shutdown_background();
            })
            .expect("spawn server thread");
        ready_rx.recv().expect("server started");
        FakeKube {
            handle,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// A handle that outlives borrows of the server (for threads and closures).
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// `http://127.0.0.1:PORT`. The same port also speaks TLS: see [`FakeKube::https_url`].
    pub fn url(&self) -> String {
        format!("http://{}", self.handle.shared.addr)
    }

    /// `https://127.0.0.1:PORT`, with a certificate signed by [`FakeKube::CA_CERT_PEM`].
    pub fn https_url(&self) -> String {
        format!("https://{}", self.handle.shared.addr)
    }

    /// The test CA that signed the server certificate.
    pub const CA_CERT_PEM: &'static str = server::CA_CERT_PEM;

    /// A kubeconfig with cluster `fake`, a user with this bearer token, context `fake`
    /// (current). The server is [`FakeKube::https_url`] with the test CA inline, because
    /// client-go (kubectl) never sends credentials to a plain `http://` server.
    pub fn kubeconfig_yaml(&self, token: &str) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(Self::CA_CERT_PEM);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: fake\n  user:\n    token: {token}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\npreferences: {{}}\n",
            self.https_url()
        )
    }

    /// Writes [`FakeKube::kubeconfig_yaml`] to `dir/kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path, token: &str) -> PathBuf {
        let p = dir.join("kubeconfig");
        std::fs::create_dir_all(dir).expect("create kubeconfig directory");
        std::fs::write(&p, self.kubeconfig_yaml(token)).expect("write kubeconfig");
        p
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

impl Handle {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the store, then (lock released) fires hooks for the changes it made.
    pub(crate) fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        self.with_store_warned(f).0
    }

    /// [`Handle::with_store`], also returning the `Warning`s the call produced.
    pub(crate) fn with_store_warned<R>(&self, f: impl FnOnce(&mut Store) -> R) -> (R, Vec<String>) {
        let (r, changes, warnings) = {
            let mut s = self.lock();
            s.warnings.clear();
            let r = f(&mut s);
            (
                r,
                std::mem::take(&mut s.changes),
                std::mem::take(&mut s.warnings),
            )
        };
        if !changes.is_empty() {
            let hooks: Vec<Arc<Hook>> = self
                .shared
                .hooks
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for c in &changes {
                for hook in &hooks {
                    hook(c, self);
                }
            }
        }
        (r, warnings)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Parses multi-document YAML. CustomResourceDefinitions register their resource; every
    /// document is created as if POSTed, except that a `status` it carries is kept (a fixture
    /// convenience: a real POST drops status of kinds with a status subresource).
    /// Panics with the Status message on error.
    pub fn load_yaml(&self, yaml: &str) {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("fakekube: bad YAML: {e}"));
        for doc in docs.into_iter().filter(|d| d.is_object()) {
            let status = doc.get("status").cloned();
            let created = self
                .create(doc)
                .unwrap_or_else(|s| panic!("fakekube: load_yaml: {}", s["message"]));
            if let Some(st) = status
                && created.get("status") != Some(&st)
            {
                let (av, kind) = (
                    created["apiVersion"].as_str().unwrap(),
                    created["kind"].as_str().unwrap(),
                );
                let ns = created["metadata"]["namespace"].as_str();
                let name = created["metadata"]["name"].as_str().unwrap();
                self.update(av, kind, ns, name, |o| o["status"] = st);
            }
        }
    }

    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let s = self.lock();
        let rt = s.by_kind(api_version, kind)?;
        s.get(
            &rt,
            namespace.unwrap_or(""),
            name,
            split_api_version(api_version).1,
        )
        .ok()
    }

    /// Objects of a kind, in a namespace or (None) all; each with apiVersion and kind.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let s = self.lock();
        let Some(rt) = s.by_kind(api_version, kind) else {
            return vec![];
        };
        s.all(&rt, namespace)
            .into_iter()
            .map(|o| Store::present(&rt, &o, split_api_version(api_version).1))
            .collect()
    }

    /// Creates like a POST by user `admin` (namespace defaults to `default`); Err is a Status.
    pub fn create(&self, obj: Value) -> Result<Value, Value> {
        let av = obj["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        self.with_store(|s| {
            let rt = s
                .by_kind(&av, &kind)
                .ok_or_else(|| status::Status::no_route().to_value())?;
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let opts = WriteOpts {
                manager: "fakekube".into(),
                version: split_api_version(&av).1.into(),
                ..Default::default()
            };
            s.create(&rt, &ns, obj, &opts, "Update")
                .map_err(|e| e.to_value())
        })
    }

    /// Deletes like an API DELETE (finalizers keep it, terminating). False if it did not exist.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        self.with_store(|s| {
            let Some(rt) = s.by_kind(api_version, kind) else {
                return false;
            };
            s.delete(&rt, namespace.unwrap_or(""), name, &WriteOpts::default())
                .is_ok()
        })
    }

    /// Mutates an object in place (status included, no precondition); bumps resourceVersion
    /// (and generation on spec change), fires hooks. Removing the last finalizer of a
    /// terminating object deletes it. `f` runs without the store lock held.
    pub fn update(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> bool {
        let ns = namespace.unwrap_or("");
        let Some((rt, old)) = ({
            let s = self.lock();
            s.by_kind(api_version, kind)
                .and_then(|rt| s.get_raw(&rt, ns, name).cloned().map(|o| (rt, o)))
        }) else {
            return false;
        };
        let mut new = Store::present(&rt, &old, split_api_version(api_version).1);
        f(&mut new);
        self.with_store(|s| s.replace_raw(&rt, ns, &old, new))
    }

    /// Registers an extra bearer token for `user`.
    pub fn add_token(&self, token: &str, user: &str) {
        self.lock().tokens.insert(token.into(), user.into());
    }

    /// RBAC: requests of `user` with `verb` on `resource` (plural, or `plural/status`) in API
    /// `group` ("" = core) get 403 Forbidden. Each argument may be "*".
    pub fn deny(&self, user: &str, verb: &str, group: &str, resource: &str) {
        self.lock()
            .denies
            .push([user.into(), verb.into(), group.into(), resource.into()]);
    }

    /// While on, every write (POST, PUT, PATCH, DELETE) without `dryRun=All` fails with 400
    /// and changes nothing: a test of a dry run proves that each of its writes said so.
    pub fn require_dry_run(&self, on: bool) {
        self.lock().require_dry_run = on;
    }

    /// Every request received so far (`path` as sent, escapes and all).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    /// Calls `hook` after every change (after the write, with no lock held).
    pub fn on_change(&self, hook: impl Fn(&Change, &Handle) + Send + Sync + 'static) {
        self.shared
            .hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(hook));
    }

    /// Calls `hook` for every request received, before it is served (no lock held): a
    /// simulated controller that moves on when a client looks.
    pub fn on_request(&self, hook: impl Fn(&RequestRecord, &Handle) + Send + Sync + 'static) {
        self.shared
            .request_hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(hook));
    }

    pub(crate) fn request_received(&self, r: &RequestRecord) {
        let hooks: Vec<Arc<RequestHook>> = self
            .shared
            .request_hooks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for hook in &hooks {
            hook(r, self);
        }
    }

    /// Runs `f` once after `delay` (on a blocking thread of the server's runtime).
    pub fn after(&self, delay: Duration, f: impl FnOnce(&Handle) + Send + 'static) {
        let h = self.clone();
        self.shared.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tokio::task::spawn_blocking(move || f(&h)).await;
        });
    }

    /// Waits (polling) until `cond` holds for the object (None = absent), up to `timeout`.
    pub fn wait_for(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        timeout: Duration,
        cond: impl Fn(Option<&Value>) -> bool,
    ) -> bool {
        let end = std::time::Instant::now() + timeout;
        loop {
            if cond(self.get(api_version, kind, namespace, name).as_ref()) {
                return true;
            }
            if std::time::Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
