//! What the Kubernetes tests share: a fake cluster with the AML 1.3 fixtures, the binary run
//! against it, age keys, and a forger that rewrites a snapshot's Kubernetes part the way
//! someone with write access to the bucket could (every hash recomputed, so only the
//! restore's own checks stand between the forgery and the cluster).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fakekube::FakeKube;
use serde_json::Value;

use crate::common::cluster::writes;
use crate::common::{Run, amlmigrate, ok};

pub struct Env {
    pub fk: FakeKube,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub repo: PathBuf,
}

impl Env {
    pub fn kc(&self) -> &str {
        self.kubeconfig.to_str().unwrap()
    }
    pub fn repo(&self) -> &str {
        self.repo.to_str().unwrap()
    }
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--kubeconfig", self.kc()]);
        amlmigrate(&all)
    }
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "amlmigrate {args:?} failed: {r:?}");
        r.stdout.trim().to_string()
    }
    /// A kubeconfig of its own for `user` (token `<name>-token`); `None` makes the token unknown.
    pub fn kubeconfig_as(&self, user: Option<&str>, name: &str) -> PathBuf {
        let token = format!("{name}-token");
        if let Some(u) = user {
            self.fk.add_token(&token, u);
        }
        self.fk
            .write_kubeconfig(&self.dir.path().join(name), &token)
    }
    pub fn backup(&self, extra: &[&str]) -> String {
        let mut args = vec![
            "backup",
            "--init",
            "--quiet",
            "--repo",
            self.repo(),
            "--kube",
        ];
        args.extend(extra);
        self.ok(&args)
    }
    /// `restore --only kubernetes` of snapshot `id` with `extra` flags.
    pub fn restore(&self, id: &str, extra: &[&str]) -> Run {
        let mut args = vec!["restore", "--repo", self.repo(), id, "--only", "kubernetes"];
        args.extend(extra);
        self.run(&args)
    }
    /// Like [`Env::restore`], and it must succeed; returns stdout trimmed.
    pub fn restore_ok(&self, id: &str, extra: &[&str]) -> String {
        let r = self.restore(id, extra);
        assert_eq!(r.code, 0, "restore {id} {extra:?} failed: {r:?}");
        r.stdout.trim().to_string()
    }
}

/// A fake cluster holding the AML 1.3 fixtures, with the PV controller running.
pub fn cluster(with_global: bool) -> Env {
    use crate::common::cluster::{GLOBAL, WORKLOAD, load};
    let fk = if with_global {
        load(&[WORKLOAD, GLOBAL])
    } else {
        load(&[WORKLOAD])
    };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fk.write_kubeconfig(dir.path(), FakeKube::ADMIN_TOKEN);
    let repo = dir.path().join("repo");
    Env {
        fk,
        dir,
        kubeconfig,
        repo,
    }
}

/// An age identity file and its recipient.
pub fn age_key(dir: &Path) -> (String, PathBuf) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let file = dir.join("age-key.txt");
    std::fs::write(&file, format!("{}\n", id.to_string().expose_secret())).unwrap();
    (id.to_public().to_string(), file)
}

pub fn manifest(repo: &str, id: &str) -> Value {
    serde_json::from_str(&ok(&["show", "--json", "--repo", repo, id])).unwrap()
}

/// What a forger edits: the manifest, `objects.json`, and every other entry of the part.
pub struct Forgery {
    pub manifest: Value,
    pub objects: Vec<Value>,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Forgery {
    /// Adds an object the way a backup stores it (`kubernetes/<cluster>/<group>/<plural>/…`),
    /// in the cluster of the objects already there.
    pub fn add(&mut self, obj: &Value, plural: &str, restore: bool) {
        let cluster = self
            .objects
            .first()
            .and_then(|o| o["cluster"].as_str())
            .unwrap_or("workload")
            .to_string();
        let av = obj["apiVersion"].as_str().unwrap();
        let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let ns = obj["metadata"]["namespace"].as_str();
        let name = obj["metadata"]["name"].as_str().unwrap();
        let path = format!(
            "kubernetes/{cluster}/{}/{plural}/{}/{name}.yaml",
            if group.is_empty() { "core" } else { group },
            ns.unwrap_or("_cluster")
        );
        self.files.insert(
            path.clone(),
            serde_saphyr::to_string(obj).unwrap().into_bytes(),
        );
        self.objects.push(serde_json::json!({
            "cluster": cluster, "api_version": av, "kind": obj["kind"], "group": group,
            "plural": plural, "namespace": ns, "name": name, "path": path,
            "encrypted": false, "restore": restore, "order": 1,
        }));
    }

    /// The YAML of the stored object at `path`, to edit in place.
    pub fn edit_yaml(&mut self, path: &str, f: impl FnOnce(&mut Value)) {
        let mut v: Value =
            serde_saphyr::from_str(std::str::from_utf8(&self.files[path]).unwrap()).unwrap();
        f(&mut v);
        self.files.insert(
            path.into(),
            serde_saphyr::to_string(&v).unwrap().into_bytes(),
        );
    }

    /// The `objects.json` entry of `kind` `namespace/name`.
    pub fn listed(&self, kind: &str, namespace: Option<&str>, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| {
                o["kind"] == kind && o["namespace"].as_str() == namespace && o["name"] == name
            })
            .unwrap_or_else(|| panic!("{kind} {namespace:?}/{name} not in objects.json"))
    }
}

/// Rewrites snapshot `id`'s Kubernetes part through `f`, recomputing every entry's and the
/// part's sha256 and size in the manifest, as an attacker with write access to the bucket can.
pub fn forge(repo: &Path, id: &str, f: impl FnOnce(&mut Forgery)) {
    crate::common::plain_snapshot(repo, id);
    let dir = repo.join("snapshots").join(id);
    let part_file = dir.join("parts/kubernetes.tar.zst");
    let (order, mut files) = crate::common::read_plain_part(&part_file);
    let objects: Vec<Value> =
        serde_json::from_slice(&files.remove("kubernetes/objects.json").unwrap()).unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut forged = Forgery {
        manifest,
        objects,
        files,
    };
    f(&mut forged);
    forged.files.insert(
        "kubernetes/objects.json".into(),
        serde_json::to_vec_pretty(&forged.objects).unwrap(),
    );
    // The original order first (objects.json stays last, as a backup writes it), new entries
    // before it.
    let mut paths: Vec<String> = order
        .into_iter()
        .filter(|p| forged.files.contains_key(p) && p != "kubernetes/objects.json")
        .collect();
    for p in forged.files.keys() {
        if !paths.contains(p) && p != "kubernetes/objects.json" {
            paths.push(p.clone());
        }
    }
    paths.push("kubernetes/objects.json".into());
    let mut m = forged.manifest;
    let part = m["parts"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["name"] == "kubernetes")
        .unwrap();
    crate::common::write_plain_part(&part_file, &paths, &forged.files, part);
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
}

/// A snapshot of the fixtures with `f` forged into it; `verify` still passes.
pub fn forged(env: &Env, f: impl FnOnce(&mut Forgery)) -> String {
    let id = env.backup(&[]);
    forge(&env.repo, &id, f);
    crate::common::ok(&["verify", "--repo", env.repo(), &id]);
    id
}

/// A restore of `id` with `extra` flags that must exit `code` without writing anything.
pub fn refused(env: &Env, id: &str, extra: &[&str], code: i32, says: &[&str]) -> Run {
    let before = writes(&env.fk);
    let r = env.restore(id, extra);
    assert_eq!(r.code, code, "{r:?}");
    for s in says {
        assert!(r.stderr.contains(s), "stderr lacks {s:?}: {r:?}");
    }
    assert!(r.stderr.contains("nothing was written"), "{r:?}");
    assert_eq!(writes(&env.fk), before, "a refused restore wrote: {r:?}");
    r
}

/// The dry run's JSON report lists the object as refused, with the reason.
pub fn dry_run_refuses(
    env: &Env,
    id: &str,
    extra: &[&str],
    code: i32,
    kind: &str,
    name: &str,
) -> Value {
    let mut args = vec!["--dry-run", "--json"];
    args.extend(extra);
    let before = writes(&env.fk);
    let r = env.restore(id, &args);
    assert_eq!(r.code, code, "{r:?}");
    assert_eq!(writes(&env.fk), before, "a dry run wrote: {r:?}");
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["ok"], false, "{out}");
    let objects = out["kubernetes"]["objects"].as_array().unwrap();
    let o = objects
        .iter()
        .find(|o| o["kind"] == kind && o["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} not in the dry run's report: {out}"));
    assert_eq!(o["action"], "refused", "{o}");
    assert!(o["error"].is_string(), "{o}");
    o.clone()
}

/// Every request the fake served whose path, decoded, mentions `needle`.
pub fn requests_naming(env: &Env, needle: &str) -> Vec<String> {
    env.fk
        .requests()
        .into_iter()
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .filter(|r| r.contains(needle) || r.replace("%23", "#").contains(needle))
        .collect()
}
