//! The guided upgrade end to end: the real binary against the fake API server (with simulated
//! ACP controllers: plugins reach Running after a delay, deleting Kubeflow Base takes the
//! profiles and their namespaces with it, the AML operator flips to 1.4 once the old chart is
//! gone, jobs finish), a fake registry, the real MariaDB and PostgreSQL, and an MLflow 2.6
//! database made by MLflow 2.6 itself.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{GLOBAL, UPGRADE_EXTRA, WORKLOAD, wait_until, writes};
use common::pg::{PG, PgDb, psql};
use common::s3::{Moto, SECRET};
use common::*;
use fakekube::{ChangeKind, FakeKube};
use serde_json::{Value, json};

const USER_NAMESPACES: [&str; 3] = ["kubeflow-admin-cpaas-io", "team-a", "team-b"];
const PLUGINS_14: [(&str, &str); 5] = [
    ("kfbase", "v1.10.1"),
    ("kfp", "v2.4.1"),
    ("volcano", "v1.10.1"),
    ("kftraining", "v1.9.2"),
    ("mlflow", "v3.1.1"),
];

/// An MLflow 2.6 database seeded through MLflow 2.6's own store.
fn mlflow_26(db: &TestDb, artifacts: &Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mlflow-env.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let venv = PathBuf::from(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    );
    let out = Command::new(venv.join("bin/python"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/mlflow/seed_store.py"
        ))
        .arg(format!("mysql+pymysql://root@127.0.0.1:3306/{}", db.name))
        .arg(artifacts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `repository:tag` → (content type, manifest).
type Manifests = Arc<Mutex<BTreeMap<String, (String, Vec<u8>)>>>;

/// A tiny registry (HTTP API v2, manifests only): HEAD/GET/PUT /v2/<repo>/manifests/<tag>.
struct Registry {
    url: String,
    manifests: Manifests,
}

impl Registry {
    fn start(images: &[&str]) -> Registry {
        let manifests: Manifests = Arc::default();
        for i in images {
            add_image(&manifests, i);
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let m = manifests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let m = m.clone();
                std::thread::spawn(move || serve(conn, m));
            }
        });
        Registry { url, manifests }
    }
    fn has(&self, image: &str) -> bool {
        self.manifests.lock().unwrap().contains_key(image)
    }
    fn remove(&self, image: &str) {
        self.manifests.lock().unwrap().remove(image);
    }
}

/// What `nerdctl push` leaves behind: a manifest under repository:tag.
fn add_image(manifests: &Manifests, i: &str) {
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{{"ref":"{i}"}}}}"#
    );
    manifests.lock().unwrap().insert(
        i.to_string(),
        (
            "application/vnd.oci.image.manifest.v1+json".into(),
            body.into_bytes(),
        ),
    );
}

fn serve(conn: std::net::TcpStream, m: Manifests) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let parts: Vec<String> = line.split_whitespace().map(String::from).collect();
        let (method, path) = (parts[0].clone(), parts[1].clone());
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let key = path
            .strip_prefix("/v2/")
            .and_then(|p| p.split_once("/manifests/"))
            .map(|(repo, tag)| format!("{repo}:{tag}"));
        let (status, ctype, out) = match (method.as_str(), key) {
            ("PUT", Some(k)) => {
                let ct = headers.get("content-type").cloned().unwrap_or_default();
                m.lock().unwrap().insert(k, (ct, body));
                ("201 Created", String::new(), Vec::new())
            }
            (_, Some(k)) => match m.lock().unwrap().get(&k) {
                Some((ct, b)) => ("200 OK", ct.clone(), b.clone()),
                None => (
                    "404 Not Found",
                    "application/json".into(),
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#.to_vec(),
                ),
            },
            _ => ("404 Not Found", String::new(), Vec::new()),
        };
        let mut resp = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", out.len());
        if !ctype.is_empty() {
            resp.push_str(&format!("Content-Type: {ctype}\r\n"));
        }
        resp.push_str("\r\n");
        w.write_all(resp.as_bytes()).unwrap();
        if method != "HEAD" {
            w.write_all(&out).unwrap();
        }
    }
}

struct Lab {
    fk: FakeKube,
    /// The global cluster when it is a server of its own.
    global: Option<FakeKube>,
    dir: tempfile::TempDir,
    config: PathBuf,
    aml: TestDb,
    _mlflow: TestDb,
    pg: PgDb,
    registry: Registry,
}

/// One kubeconfig, two contexts: `workload` and `global`.
fn two_cluster_kubeconfig(dir: &Path, workload: &FakeKube, global: &FakeKube) -> PathBuf {
    let one = workload.kubeconfig_yaml(FakeKube::ADMIN_TOKEN);
    let ca = one
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap();
    let cluster = |name: &str, url: String| {
        format!(
            "- name: {name}\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n"
        )
    };
    let context =
        |name: &str| format!("- name: {name}\n  context:\n    cluster: {name}\n    user: admin\n");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{}{}users:\n- name: admin\n  user:\n    token: {}\ncontexts:\n{}{}current-context: workload\n",
        cluster("workload", workload.https_url()),
        cluster("global", global.https_url()),
        FakeKube::ADMIN_TOKEN,
        context("workload"),
        context("global"),
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The simulated platform: how ACP and the AML operator react to what the upgrade does.
fn controllers(fk: &FakeKube, global: &FakeKube, failing_plugin: Option<&'static str>) {
    // ACP's plugin controller (a failing plugin reports its error instead of Running).
    global.on_change(move |c, h| {
        if !c.is("cluster.alauda.io", "ModuleInfo") || c.kind == ChangeKind::Deleted {
            return;
        }
        let o = c.object.clone();
        let name = o["metadata"]["name"].as_str().unwrap().to_string();
        let module = o["metadata"]["labels"]["cpaas.io/module-name"].as_str().unwrap_or("").to_string();
        let deleting = !o["metadata"]["deletionTimestamp"].is_null();
        let settled = o["status"]["phase"] == "Running" && o["status"]["version"] == o["spec"]["version"];
        if !deleting && (settled || o["status"]["phase"] == "Failed") {
            return;
        }
        h.after(Duration::from_millis(300), move |h| {
            h.update("cluster.alauda.io/v1alpha1", "ModuleInfo", None, &name, |o| {
                if deleting {
                    o["metadata"]["finalizers"] = json!([]);
                } else if Some(module.as_str()) == failing_plugin {
                    o["status"] = json!({"phase": "Failed", "message": format!("helm install {module}: image pull back-off for kfp-api-server")});
                } else {
                    let v = o["spec"]["version"].clone();
                    o["status"] = json!({"phase": "Running", "version": v});
                }
            });
        });
    });
    // Uninstalling Kubeflow Base (a global-cluster object) takes the Profiles and with them
    // the user namespaces of the workload cluster.
    let h = fk.handle();
    global.on_change(move |c, _| {
        if c.is("cluster.alauda.io", "ModuleInfo")
            && c.kind == ChangeKind::Deleted
            && c.object["metadata"]["labels"]["cpaas.io/module-name"] == "kfbase"
        {
            for p in h.list("kubeflow.org/v1", "Profile", None) {
                h.delete(
                    "kubeflow.org/v1",
                    "Profile",
                    None,
                    p["metadata"]["name"].as_str().unwrap(),
                );
            }
            for ns in USER_NAMESPACES {
                h.delete("v1", "Namespace", None, ns);
            }
        }
    });
    // Once the 1.3 chart is gone the operator (upgraded in OperatorHub) reports 1.4 and resets
    // the experimental features.
    fk.on_change(|c, h| {
        if c.is("app.alauda.io", "HelmRequest") && c.kind == ChangeKind::Deleted {
            h.after(Duration::from_millis(500), |h| {
                h.update(
                    "amlclusters.aml.dev/v1alpha1",
                    "AmlCluster",
                    None,
                    "default",
                    |o| {
                        o["status"]["version"] = json!("v1.4.0");
                        o["spec"]["values"]["experimentalFeatures"] =
                            json!({"datasets": false, "imageBuilder": false, "tuneModels": false});
                    },
                );
            });
        }
    });
    fakekube::controllers::volcano_jobs_finish(fk, Duration::from_millis(1500));
}

fn lab(failing_plugin: Option<&'static str>) -> Lab {
    lab_with(failing_plugin, false)
}

/// `split`: the ACP global cluster is a second API server (context `global`), as in production.
fn lab_with(failing_plugin: Option<&'static str>, split: bool) -> Lab {
    let (fk, global) = if split {
        (
            common::cluster::load(&[WORKLOAD, UPGRADE_EXTRA]),
            Some(common::cluster::load(&[GLOBAL])),
        )
    } else {
        (
            common::cluster::load(&[WORKLOAD, GLOBAL, UPGRADE_EXTRA]),
            None,
        )
    };
    controllers(&fk, global.as_ref().unwrap_or(&fk), failing_plugin);
    let dir = tempfile::tempdir().unwrap();
    let (kubeconfig, contexts) = match &global {
        None => (
            fk.write_kubeconfig(dir.path(), FakeKube::ADMIN_TOKEN),
            String::new(),
        ),
        Some(g) => (
            two_cluster_kubeconfig(dir.path(), &fk, g),
            "context = \"workload\"\nglobal_context = \"global\"\n".to_string(),
        ),
    };
    // The AML MySQL user has a password (it goes into Secrets); a test user of our own.
    sql(
        None,
        "CREATE USER IF NOT EXISTS 'amlupgrade'@'%' IDENTIFIED BY 'upgrade-test-pw'; \
               GRANT ALL PRIVILEGES ON *.* TO 'amlupgrade'@'%'",
    );
    let aml = TestDb::create("upg_aml");
    sql(
        Some(&aml.name),
        "CREATE TABLE finetune_jobs (id INT PRIMARY KEY, name VARCHAR(64), status VARCHAR(16)); \
         INSERT INTO finetune_jobs SELECT seq, CONCAT('ft-', seq), IF(seq % 7 = 0, 'Failed', 'Succeeded') FROM seq_1_to_250; \
         CREATE TABLE datasets (id INT PRIMARY KEY, uri TEXT); INSERT INTO datasets VALUES (1, 's3://d/1'), (2, 's3://d/2')",
    );
    let mlflow = TestDb::create("upg_mlf");
    mlflow_26(&mlflow, &dir.path().join("mlartifacts"));
    let model = dir
        .path()
        .join("mlartifacts/1/run-0/artifacts/model/MLmodel");
    std::fs::create_dir_all(model.parent().unwrap()).unwrap();
    std::fs::write(&model, "flavors:\n  pytorch: {}\n").unwrap();
    let pg = PgDb::new("upg_pg");
    let registry = Registry::start(&[
        "mlops/llm-trainer:v1.4.3",
        "mlops/buildkit-gitlfs:v0.13-rootless-aml",
        "mlops/buildkit:v0.15.2-aml",
    ]);
    let plugins: String = PLUGINS_14
        .iter()
        .map(|(m, v)| format!("[[install.plugins]]\nmodule = \"{m}\"\nversion = \"{v}\"\nconfig = {{ note = \"test\" }}\n"))
        .collect();
    let config = dir.path().join("upgrade.toml");
    std::fs::write(
        &config,
        format!(
            r#"repository = "{repo}"
[kubernetes]
kubeconfig = "{kc}"
{contexts}cluster_name = "business-1"
[mysql]
url = "mysql://amlupgrade@127.0.0.1:3306"
databases = ["{aml}", "{mlf}"]
aml_database = "{aml}"
[postgres]
url = "{PG}/{pg}"
[preflight]
storage_class = "sc-topolvm"
dex_redirect_uri = "https://192.168.139.133:30665/oauth2/callback"
servicemesh_name = "business-1"
[images]
registry = "{reg}"
[drain]
timeout = "30s"
poll = "200ms"
running_sql = "SELECT COUNT(*) FROM `{aml}`.finetune_jobs WHERE status = 'Running'"
[snapshot]
mlflow_artifacts = "{artifacts}"
[notebooks]
delete = true
recreate = true
[uninstall]
timeout = "20s"
[operator]
timeout = "30s"
poll = "200ms"
[install]
timeout = "{install_timeout}"
poll = "200ms"
{plugins}
[mlflow]
source_database = "{mlf}"
artifacts_to = "{artifacts}-3"
[features]
mysql_host = "10.4.158.198"
training_pvc_size = "20Gi"
training_pvc_storage_class = "sc-topolvm"
notebook_storage_class = "sc-topolvm"
create_password_secret = true
password_secret_name = "aml-mysql-root-token-14"
image_builder_namespaces = ["kubeflow", "team-a"]
"#,
            repo = dir.path().join("repo").display(),
            artifacts = dir.path().join("mlartifacts").display(),
            kc = kubeconfig.display(),
            aml = aml.name,
            mlf = mlflow.name,
            pg = pg.name,
            reg = registry.url,
            install_timeout = if failing_plugin.is_some() {
                "3s"
            } else {
                "20s"
            },
        ),
    )
    .unwrap();
    // A fine-tune job (and its record) still running when the upgrade starts: they finish
    // once the drain step has been waiting for a moment.
    fk.create(json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "metadata": {"name": "late-finetune", "namespace": "team-a"},
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {"containers": [{"name": "pytorch", "image": "x"}]}}}}}}))
        .unwrap();
    let (h, aml_db) = (fk.handle(), aml.name.clone());
    when_journal_shows(&dir, "drain", "started", move || {
        std::thread::sleep(Duration::from_millis(1500));
        finish_late_finetune(&h);
        sql(
            Some(&aml_db),
            "UPDATE finetune_jobs SET status = 'Succeeded' WHERE id = 250",
        );
    });
    Lab {
        fk,
        global,
        dir,
        config,
        aml,
        _mlflow: mlflow,
        pg,
        registry,
    }
}

impl Lab {
    fn cfg(&self) -> &str {
        self.config.to_str().unwrap()
    }
    fn upgrade(&self, args: &[&str]) -> Run {
        let mut all = vec!["upgrade"];
        all.extend_from_slice(args);
        all.extend(["--config", self.cfg()]);
        amlmigrate_env(&all, &[("AMLMIGRATE_MYSQL_PASSWORD", "upgrade-test-pw")])
    }
    fn journal(&self) -> Vec<Value> {
        let runs = self.dir.path().join("repo/runs");
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&runs) else {
            return out;
        };
        let mut dirs: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("journal.jsonl").exists())
            .collect();
        dirs.sort();
        if let Some(d) = dirs.last() {
            for l in std::fs::read_to_string(d.join("journal.jsonl"))
                .unwrap_or_default()
                .lines()
            {
                if let Ok(v) = serde_json::from_str(l) {
                    out.push(v);
                }
            }
        }
        out
    }
    /// Writes (not dry runs) served by the workload and, when separate, the global cluster.
    fn writes(&self) -> usize {
        writes(&self.fk) + self.global.as_ref().map(writes).unwrap_or(0)
    }
    /// The ACP global cluster (plugins, dex, ServiceMesh).
    fn g(&self) -> &FakeKube {
        self.global.as_ref().unwrap_or(&self.fk)
    }
    fn module_infos(&self) -> Vec<Value> {
        self.g()
            .list("cluster.alauda.io/v1alpha1", "ModuleInfo", None)
    }
    fn report(&self) -> Value {
        let runs = self.dir.path().join("repo/runs");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("report.json").exists())
            .collect();
        dirs.sort();
        serde_json::from_str(
            &std::fs::read_to_string(dirs.last().expect("a report").join("report.json")).unwrap(),
        )
        .unwrap()
    }
}

/// The end state every successful run must reach.
fn assert_upgraded(lab: &Lab) {
    let fk = &lab.fk;
    // One ModuleInfo per plugin, at its 1.4 version, Running; no 1.3 plugin left.
    let mis = lab.module_infos();
    for (m, v) in PLUGINS_14 {
        let mine: Vec<&Value> = mis
            .iter()
            .filter(|o| o["metadata"]["labels"]["cpaas.io/module-name"] == m)
            .collect();
        assert_eq!(mine.len(), 1, "plugin {m}: {mine:?}");
        assert_eq!(mine[0]["spec"]["version"], v, "{m}");
        assert_eq!(mine[0]["status"]["phase"], "Running", "{m}");
    }
    assert!(
        fk.get(
            "app.alauda.io/v1",
            "HelmRequest",
            Some("kubeflow"),
            "kubeflow"
        )
        .is_none()
    );
    // Features and MySQL settings.
    let ac = fk
        .get(
            "amlclusters.aml.dev/v1alpha1",
            "AmlCluster",
            None,
            "default",
        )
        .unwrap();
    assert_eq!(
        ac["spec"]["values"]["experimentalFeatures"],
        json!({"datasets": true, "imageBuilder": true, "tuneModels": true})
    );
    assert_eq!(
        ac["spec"]["values"]["global"]["mysql"]["passwordSecretRef"]["name"],
        "aml-mysql-root-token-14"
    );
    let aml = fk
        .get("amls.aml.dev/v1alpha1", "Aml", None, "default-aml")
        .unwrap();
    assert_eq!(
        aml["spec"]["values"]["amlService"]["trainingPVCSize"],
        "20Gi"
    );
    let secret = fk
        .get(
            "v1",
            "Secret",
            Some("cpaas-system"),
            "aml-mysql-root-token-14",
        )
        .unwrap();
    assert_eq!(secret["data"]["password"], "dXBncmFkZS10ZXN0LXB3"); // upgrade-test-pw
    let cm = fk
        .get(
            "v1",
            "ConfigMap",
            Some("team-a"),
            "aml-image-builder-config",
        )
        .unwrap();
    assert_eq!(cm["data"]["MODEL_REPO_BUILDER_DB_HOST"], "10.4.158.198");
    let deploy = fk
        .get("apps/v1", "Deployment", Some("kubeflow"), "aml-api-deploy")
        .unwrap();
    assert!(
        deploy["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    let mlflow_deploy = fk
        .get("apps/v1", "Deployment", Some("kubeflow"), "mlflow")
        .unwrap();
    assert_eq!(
        mlflow_deploy["spec"]["replicas"], 1,
        "the MLflow server was not scaled back"
    );
    // Users, their bindings, their notebooks (recreated) and volumes are back.
    assert_eq!(fk.list("kubeflow.org/v1", "Profile", None).len(), 3);
    assert_eq!(fk.list("kubeflow.org/v1", "Notebook", None).len(), 4);
    assert_eq!(
        fk.list(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some("team-a")
        )
        .len(),
        2
    );
    wait_until("every claim Bound", || {
        let c = fk.list("v1", "PersistentVolumeClaim", None);
        c.len() == 8 && c.iter().all(|c| c["status"]["phase"] == "Bound")
    });
    // The global cluster's settings were added, the existing provider kept.
    let dex = lab
        .g()
        .get("v1", "ConfigMap", Some("cpaas-system"), "dex-configmap")
        .unwrap();
    assert!(
        dex["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .contains("https://192.168.139.133:30665/oauth2/callback")
    );
    let mesh = lab
        .g()
        .get(
            "asm.alauda.io/v1alpha1",
            "ServiceMesh",
            Some("cpaas-system"),
            "business-1",
        )
        .unwrap()
        .to_string();
    assert!(
        mesh.contains("oauth2-proxy-kubeflow") && mesh.contains("asm-otel-tracing"),
        "{mesh}"
    );
    assert!(
        mesh.contains("jwksResolverExtraRootCA")
            && mesh.contains("BEGIN CERTIFICATE")
            && mesh.contains("PILOT_JWT_PUB_KEY_REFRESH_INTERVAL"),
        "{mesh}"
    );
    // MLflow's artifacts came along from the snapshot.
    let copied = lab
        .dir
        .path()
        .join("mlartifacts-3/1/run-0/artifacts/model/MLmodel");
    assert_eq!(
        std::fs::read_to_string(&copied).unwrap(),
        "flavors:\n  pytorch: {}\n"
    );
    // The referenced llm-trainer tag was made to point at the pushed image.
    assert!(lab.registry.has("mlops/llm-trainer:v1.3.2-rc.4.g7c1d2e9a"));
    // Data: job records as before, MLflow in PostgreSQL.
    assert_eq!(
        sql(Some(&lab.aml.name), "SELECT COUNT(*) FROM finetune_jobs").trim(),
        "250"
    );
    assert_eq!(
        psql(&lab.pg.name, "SELECT count(*) FROM metrics").trim(),
        "300"
    );
    assert_eq!(psql(&lab.pg.name, "SELECT count(*) FROM runs").trim(), "6");
}

/// The fine-tune job the drain step waits for succeeds.
fn finish_late_finetune(h: &fakekube::Handle) {
    h.update(
        "kubeflow.org/v1",
        "PyTorchJob",
        Some("team-a"),
        "late-finetune",
        |o| {
            o["status"]["conditions"] = json!([{"type": "Succeeded", "status": "True"}]);
        },
    );
}

/// Runs `then` (on a thread of its own) once a journal in the lab's repository records `event`
/// for `step`: how the simulated people and workloads react to what the run says.
fn when_journal_shows(
    dir: &tempfile::TempDir,
    step: &str,
    event: &str,
    then: impl FnOnce() + Send + 'static,
) {
    let runs = dir.path().join("repo/runs");
    let needle = format!(r#""step":"{step}","event":"{event}""#);
    std::thread::spawn(move || {
        // The lab's folder disappears with the lab: then nobody is waiting any more.
        while runs.parent().unwrap().parent().unwrap().exists() {
            let seen = walk_if_exists(&runs)
                .iter()
                .filter(|p| p.ends_with("journal.jsonl"))
                .any(|p| {
                    std::fs::read_to_string(p)
                        .unwrap_or_default()
                        .contains(&needle)
                });
            if seen {
                then();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

fn walk_if_exists(dir: &Path) -> Vec<PathBuf> {
    if dir.exists() { walk(dir) } else { Vec::new() }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_full_run_upgrades_everything_and_its_report_is_right() {
    full_run(lab(None));
}

#[test]
fn with_a_separate_global_cluster_plugins_dex_and_mesh_change_there_and_nowhere_else() {
    let lab = lab_with(None, true);
    let lab = full_run(lab);
    let global = lab.global.as_ref().unwrap();
    let touched = |fk: &FakeKube, what: &str| {
        fk.requests()
            .iter()
            .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
            .any(|r| r.path.contains(what))
    };
    for plural in [
        "/moduleinfoes",
        "/servicemeshes",
        "/configmaps/dex-configmap",
    ] {
        assert!(
            touched(global, plural),
            "{plural} not written in the global cluster"
        );
        assert!(
            !touched(&lab.fk, plural),
            "{plural} written in the workload cluster"
        );
    }
    for plural in [
        "/profiles",
        "/amlclusters",
        "/persistentvolumes",
        "/notebooks",
    ] {
        assert!(
            !touched(global, plural),
            "{plural} written in the global cluster"
        );
    }
    assert!(
        lab.fk
            .list("cluster.alauda.io/v1alpha1", "ModuleInfo", None)
            .is_empty()
    );
}

/// A full run on a fresh 1.3 lab, with everything the report must say; returns the lab.
fn full_run(lab: Lab) -> Lab {
    // A fine-tune still running by the AML database's records (drain.running_sql); it
    // finishes with the job, while the drain step waits.
    sql(
        Some(&lab.aml.name),
        "UPDATE finetune_jobs SET status = 'Running' WHERE id = 250",
    );
    // What people still have to do: one image and one 1.4 plugin package are not pushed yet.
    lab.registry
        .remove("mlops/buildkit-gitlfs:v0.13-rootless-aml");
    let mlflow_package = lab
        .g()
        .get(
            "cluster.alauda.io/v1alpha1",
            "ModuleConfig",
            None,
            "mlflow-v3.1.1",
        )
        .unwrap();
    lab.g().delete(
        "cluster.alauda.io/v1alpha1",
        "ModuleConfig",
        None,
        "mlflow-v3.1.1",
    );
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout.contains("images             manual")
            && plan
                .stdout
                .contains("mlops/buildkit-gitlfs:v0.13-rootless-aml"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("install-plugins    manual")
            && plan.stdout.contains("no ModuleConfig mlflow-v3.1.1"),
        "{plan:?}"
    );
    // The operator pushes the image once the run asks for it, and the plugin package while
    // the first plugins install.
    let manifests = lab.registry.manifests.clone();
    when_journal_shows(&lab.dir, "images", "waiting", move || {
        add_image(&manifests, "mlops/buildkit-gitlfs:v0.13-rootless-aml");
    });
    let h = lab.g().handle();
    when_journal_shows(&lab.dir, "install-plugins", "waiting", move || {
        let mut pkg = mlflow_package;
        let m = pkg["metadata"].as_object_mut().unwrap();
        m.remove("resourceVersion");
        m.remove("uid");
        h.create(pkg).unwrap();
    });
    assert!(
        plan.stdout.contains("preflight") && plan.stdout.contains("to do"),
        "{plan:?}"
    );
    assert!(
        plan.stdout
            .contains("change: ConfigMap cpaas-system/dex-configmap"),
        "{plan:?}"
    );
    assert!(
        plan.stdout
            .contains("1 fine-tune record(s) running (drain.running_sql)"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("drain") && plan.stdout.contains("PyTorchJob team-a/late-finetune"),
        "{plan:?}"
    );

    // No terminal and no --yes: nothing that changes the cluster runs.
    let before = lab.writes();
    let r = lab.upgrade(&["run"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("--yes"), "{r:?}");
    assert_eq!(lab.writes(), before, "a declined run wrote to the cluster");

    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("## Data before and after"), "{r:?}");
    assert!(
        r.stderr.contains("ACTION NEEDED: push the missing images")
            && r.stderr
                .contains("ACTION NEEDED: push the mlflow v3.1.1 plugin package")
            && r.stderr
                .contains("ACTION NEEDED: upgrade the Alauda AI operator"),
        "{r:?}"
    );
    assert!(!r.all().contains("upgrade-test-pw"), "password printed");
    assert_upgraded(&lab);

    let report = lab.report();
    let steps: Vec<(&str, &str)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(steps.len(), 13);
    for (s, outcome) in &steps {
        assert!(
            *outcome == "applied" || *outcome == "already done",
            "{s}: {outcome}"
        );
    }
    let counts = report["counts"].as_array().unwrap();
    for c in counts {
        assert_eq!(c["before"], c["after"], "count differs: {c}");
    }
    let find = |what: &str| {
        counts
            .iter()
            .find(|c| c["what"].as_str().unwrap().contains(what))
            .unwrap_or_else(|| panic!("no count {what}: {counts:?}"))["after"]
            .clone()
    };
    assert_eq!(find("finetune_jobs"), 250);
    assert_eq!(find("MLflow metric points"), 300);
    assert_eq!(find("PVCs Bound"), 8);
    assert_eq!(find("Profiles"), 3);
    let verify = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "verify")
        .unwrap();
    assert!(
        verify["checked"].to_string().contains("8 PVC(s) Bound"),
        "{verify}"
    );
    assert!(
        lab.dir
            .path()
            .join(format!(
                "repo/runs/{}/report.md",
                report["run"].as_str().unwrap()
            ))
            .exists()
    );

    // Afterwards: every step done, status finished, and another run changes nothing.
    let plan = lab.upgrade(&["plan", "--json"]);
    let v: Value = serde_json::from_str(&plan.stdout).unwrap();
    for s in v["steps"].as_array().unwrap() {
        assert_eq!(s["state"], "done", "{s}");
    }
    let st = lab.upgrade(&["status"]);
    assert!(st.stdout.contains("finished"), "{st:?}");
    let before = lab.writes();
    let again = lab.upgrade(&["run", "--yes", "--json"]);
    assert_eq!(again.code, 0, "{again:?}");
    let out: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(out["outcome"]["applied"], json!([]), "{out}");
    assert_eq!(
        lab.writes(),
        before,
        "a run on a finished system wrote to the cluster"
    );
    lab
}

#[test]
fn a_run_killed_at_several_steps_resumes_to_the_same_end_state_applying_nothing_twice() {
    let lab = lab(None);
    for step in [
        "snapshot",
        "uninstall-plugins",
        "install-plugins",
        "migrate-mlflow",
        "enable-features",
    ] {
        let mut child = Command::new(bin())
            .args(["upgrade", "run", "--yes", "--quiet", "--config", lab.cfg()])
            .env("AMLMIGRATE_MYSQL_PASSWORD", "upgrade-test-pw")
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let started = lab
                .journal()
                .iter()
                .any(|e| e["step"] == step && e["event"] == "started");
            if started {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the run ended ({status}) before step {step} started: {:?}",
                    lab.journal()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "step {step} never started"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
    let journal = lab.journal();
    assert!(
        journal
            .iter()
            .filter(|e| e["step"] == "run" && e["event"] == "resumed")
            .count()
            >= 4,
        "{journal:?}"
    );
    // Nothing destructive twice: each 1.3 plugin deleted once, each 1.4 plugin created once,
    // one snapshot.
    let reqs = lab.g().requests();
    let mi_posts = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/moduleinfoes"))
        .count();
    let mi_deletes = reqs
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/moduleinfoes/"))
        .count();
    assert_eq!(
        mi_posts, 4,
        "ModuleInfos created: 4 new plugins (volcano is upgraded in place)"
    );
    assert_eq!(mi_deletes, 4, "ModuleInfos deleted: the four 1.3 plugins");
    // A backup killed before its commit leaves no snapshot (prune removes its leftovers).
    let committed = std::fs::read_dir(lab.dir.path().join("repo/snapshots"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("manifest.json").exists())
        .count();
    assert!(committed <= 2, "{committed} snapshots committed");
    let snapshot_done = journal
        .iter()
        .filter(|e| e["step"] == "snapshot" && e["event"] == "done")
        .count();
    assert_eq!(
        snapshot_done, 1,
        "the snapshot step completed twice: {journal:?}"
    );
    // No secret in the journal or the report.
    for e in walk(&lab.dir.path().join("repo/runs")) {
        let text = std::fs::read_to_string(&e).unwrap_or_default();
        assert!(
            !text.contains("upgrade-test-pw") && !text.contains("dXBncmFkZS10ZXN0LXB3"),
            "secret in {}",
            e.display()
        );
    }
}

#[test]
fn ctrl_c_stops_the_run_cleanly_and_the_same_command_resumes_it() {
    let lab = lab(None);
    let child = Command::new(bin())
        .args(["upgrade", "run", "--yes", "--quiet", "--config", lab.cfg()])
        .env("AMLMIGRATE_MYSQL_PASSWORD", "upgrade-test-pw")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The drain step waits for the running fine-tune job: interrupt it there.
    wait_until("the drain step started", || {
        lab.journal()
            .iter()
            .any(|e| e["step"] == "drain" && e["event"] == "started")
    });
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("run the same command to resume"),
        "{stderr}"
    );
    let journal = lab.journal();
    let last = journal.last().unwrap();
    assert_eq!(
        (&last["step"], &last["event"]),
        (&json!("run"), &json!("stopped")),
        "{journal:?}"
    );
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
}

/// Runs `upgrade run` on a pseudo-terminal (util-linux `script`), typing `answers`.
fn run_on_a_terminal(lab: &Lab, answers: &str) -> (Option<i32>, String) {
    let cmd = format!("{} upgrade run --config {}", bin(), lab.cfg());
    let mut child = Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .env("AMLMIGRATE_MYSQL_PASSWORD", "upgrade-test-pw")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn on_a_terminal_each_step_that_changes_the_cluster_is_confirmed_first() {
    let lab = lab(None);
    let before = lab.writes();
    let (code, screen) = run_on_a_terminal(&lab, "n\n");
    assert_eq!(code, Some(4), "{screen}");
    assert!(screen.contains("apply this step? [y/N]"), "{screen}");
    assert!(
        screen.contains("ConfigMap cpaas-system/dex-configmap"),
        "{screen}"
    );
    assert!(screen.contains("declined at the prompt"), "{screen}");
    assert_eq!(lab.writes(), before, "a declined step wrote to the cluster");
    let (code, screen) = run_on_a_terminal(&lab, &"y\n".repeat(12));
    assert_eq!(code, Some(0), "{screen}");
    let asked = screen.matches("apply this step? [y/N]").count();
    // preflight fixes, the image tag copy, delete-notebooks, uninstall-plugins,
    // migrate-mlflow, enable-features.
    assert_eq!(asked, 6, "{screen}");
    assert_upgraded(&lab);
}

#[test]
fn a_second_run_at_the_same_time_is_refused_naming_the_first() {
    let lab = lab(None);
    let first = Command::new(bin())
        .args(["upgrade", "run", "--yes", "--quiet", "--config", lab.cfg()])
        .env("AMLMIGRATE_MYSQL_PASSWORD", "upgrade-test-pw")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first run waits in the drain step for the running job.
    wait_until("the first run drains", || {
        lab.journal()
            .iter()
            .any(|e| e["step"] == "drain" && e["event"] == "started")
    });
    let second = lab.upgrade(&["run", "--yes"]);
    assert_eq!(second.code, 4, "{second:?}");
    assert!(
        second
            .stderr
            .contains("another `amlmigrate upgrade run` is working on repository")
            && second.stderr.contains(&format!("pid {}", first.id())),
        "{second:?}"
    );
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_upgraded(&lab);
    // The lock went with the first run.
    assert!(!lab.dir.path().join("repo/runs/.lock/upgrade.json").exists());
}

#[test]
fn until_stops_after_a_step_and_only_runs_one() {
    let lab = lab(None);
    let r = lab.upgrade(&["run", "--yes", "--until", "snapshot"]);
    assert_eq!(r.code, 0, "{r:?}");
    let events = |step: &str| -> Vec<String> {
        lab.journal()
            .iter()
            .filter(|e| e["step"] == step)
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(events("snapshot"), ["started", "done"]);
    assert!(events("protect-pvcs").is_empty());
    let retained = |fk: &FakeKube| {
        fk.list("v1", "PersistentVolume", None)
            .iter()
            .filter(|p| p["spec"]["persistentVolumeReclaimPolicy"] == "Retain")
            .count()
    };
    assert_eq!(retained(&lab.fk), 1, "a step after --until ran");
    let st = lab.upgrade(&["status"]);
    assert!(
        st.stdout.contains("not finished") && st.stdout.contains("snapshot           done"),
        "{st:?}"
    );
    // --only: that step, nothing after it; the same run goes on.
    let r = lab.upgrade(&["run", "--yes", "--only", "protect-pvcs"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(retained(&lab.fk), 8);
    assert!(events("delete-notebooks").is_empty());
    let r = lab.upgrade(&["run", "--yes", "--until", "no-such-step"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("possible values"), "{r:?}");
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
    // One run from start to end, one snapshot.
    let runs: Vec<Value> = lab
        .journal()
        .into_iter()
        .filter(|e| e["step"] == "run")
        .collect();
    assert_eq!(runs.first().unwrap()["event"], "started");
    assert_eq!(runs.last().unwrap()["event"], "finished");
    assert_eq!(
        events("snapshot").iter().filter(|e| *e == "done").count(),
        1
    );
}

#[test]
fn an_upgrade_keeps_its_journal_lock_and_report_in_an_s3_repository() {
    let moto = Moto::start();
    moto.bucket("upgrade");
    let lab = lab(None);
    let local = format!("repository = \"{}\"", lab.dir.path().join("repo").display());
    let cfg = std::fs::read_to_string(&lab.config).unwrap();
    assert!(cfg.contains(&local));
    std::fs::write(
        &lab.config,
        cfg.replace(&local, "repository = \"s3://upgrade/aml\""),
    )
    .unwrap();
    // Nothing watches an S3 journal here: the fine-tune job is simply done already.
    finish_late_finetune(&lab.fk.handle());
    let mut env = moto.env();
    env.push(("AMLMIGRATE_MYSQL_PASSWORD", "upgrade-test-pw".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let upgrade = |args: &[&str]| {
        let mut all = vec!["upgrade"];
        all.extend_from_slice(args);
        all.extend(["--config", lab.cfg()]);
        let r = amlmigrate_env(&all, &env);
        assert!(!r.all().contains(SECRET), "the S3 secret leaked: {r:?}");
        r
    };
    let r = upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
    let st = upgrade(&["status"]);
    assert!(
        st.stdout.contains(": finished") && st.stdout.contains("## Data before and after"),
        "{st:?}"
    );
    let listing = Command::new("curl")
        .args([
            "-sf",
            &format!("{}/upgrade?list-type=2&prefix=aml/", moto.endpoint()),
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for want in [
        "/journal.jsonl",
        "/report.json",
        "/report.md",
        "/manifest.json",
        "/parts/kubernetes.tar.zst",
    ] {
        assert!(
            listing.contains(want),
            "{want} not in the bucket: {listing}"
        );
    }
    assert!(
        !listing.contains("upgrade.json"),
        "the run lock was left: {listing}"
    );
    assert!(
        !lab.dir.path().join("repo").exists(),
        "a local repository was written"
    );
}

#[test]
fn a_plugin_that_never_reaches_running_fails_naming_it_and_the_run_resumes_after_the_fix() {
    let lab = lab(Some("kfp"));
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("plugin kfp v2.4.1"), "{r:?}");
    assert!(
        r.stderr.contains("did not reach Running within 3s"),
        "{r:?}"
    );
    assert!(r.stderr.contains("image pull back-off"), "{r:?}");
    assert!(r.stderr.contains("run the same command"), "{r:?}");
    let st = lab.upgrade(&["status"]);
    assert!(st.stdout.contains("install-plugins    failed"), "{st:?}");
    // Later plugins were not attempted before kfp.
    assert!(
        !lab.module_infos()
            .iter()
            .any(
                |o| o["metadata"]["labels"]["cpaas.io/module-name"] == "kftraining"
                    && o["spec"]["version"] == "v1.9.2"
            )
    );
    // The platform team fixes the plugin.
    let kfp = lab
        .module_infos()
        .into_iter()
        .find(|o| o["metadata"]["labels"]["cpaas.io/module-name"] == "kfp")
        .unwrap();
    lab.g().update(
        "cluster.alauda.io/v1alpha1",
        "ModuleInfo",
        None,
        kfp["metadata"]["name"].as_str().unwrap(),
        |o| {
            o["status"] = json!({"phase": "Running", "version": "v2.4.1"});
        },
    );
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_upgraded(&lab);
}

#[test]
fn preflight_failures_are_each_reported_with_the_fix_and_nothing_changes() {
    let lab = lab(None);
    lab.fk.create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "arm-1", "labels": {"kubernetes.io/arch": "arm64"}}, "status": {"nodeInfo": {"architecture": "arm64"}}})).unwrap();
    lab.fk
        .delete("storage.k8s.io/v1", "StorageClass", None, "sc-topolvm");
    lab.registry.remove("mlops/buildkit:v0.15.2-aml");
    lab.g().update(
        "asm.alauda.io/v1alpha1",
        "ServiceMesh",
        Some("cpaas-system"),
        "business-1",
        |o| {
            o["spec"]["istioVersion"] = json!("1.20.3");
        },
    );
    // And an external Kubeflow Pipelines MySQL that is not 5.7 (the local MariaDB 10.11).
    let cfg = std::fs::read_to_string(&lab.config)
        .unwrap()
        .replace(
            &format!("{PG}/{}", lab.pg.name),
            &format!("{PG}/no_such_db_{}", lab.pg.name),
        )
        .replace(
            "aml_database =",
            &format!("kfp_url = \"{MYSQL}\"\naml_database ="),
        );
    std::fs::write(&lab.config, cfg).unwrap();
    let plan = lab.upgrade(&["plan"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("BLOCKED"), "{plan:?}");
    assert!(
        plan.stdout.contains("FAIL nodes: arm-1 is arm64"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("not in the registry")
            && plan.stdout.contains("mlops/buildkit:v0.15.2-aml"),
        "{plan:?}"
    );
    let before = lab.writes();
    let r = lab.upgrade(&["run", "--yes"]);
    assert_eq!(r.code, 4, "{r:?}");
    for want in [
        "arm-1 is arm64",
        "remove or cordon those nodes",
        "Istio 1.20.3",
        "upgrade the service mesh first",
        "storage class sc-topolvm does not exist",
        "FAIL MLflow PostgreSQL",
        "Kubeflow Pipelines needs MySQL 5.7",
    ] {
        assert!(r.stderr.contains(want), "missing {want:?}: {r:?}");
    }
    assert!(!r.stderr.contains("upgrade-test-pw"));
    assert_eq!(
        lab.writes(),
        before,
        "a blocked preflight wrote to the cluster"
    );
}

#[test]
fn profile_create_makes_the_articles_three_objects_once() {
    let fk = common::cluster::load(&[WORKLOAD]);
    // Kubeflow's Profile controller: a Profile gets its namespace.
    fk.on_change(|c, h| {
        if c.is("kubeflow.org", "Profile") && c.kind == ChangeKind::Added {
            let name = c.object["metadata"]["name"].as_str().unwrap().to_string();
            h.after(Duration::from_millis(300), move |h| {
                let _ = h.create(
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
                );
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kc = fk.write_kubeconfig(dir.path(), FakeKube::ADMIN_TOKEN);
    let args = [
        "profile",
        "create",
        "--user",
        "carol@example.com",
        "--kubeconfig",
        kc.to_str().unwrap(),
    ];
    let out = ok(&args);
    assert_eq!(out.matches("created").count(), 3, "{out}");
    let p = fk
        .get(
            "kubeflow.org/v1",
            "Profile",
            None,
            "kubeflow-carol-example-com",
        )
        .unwrap();
    assert_eq!(p["spec"]["owner"]["name"], "carol@example.com");
    let rb = fk
        .get(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some("kubeflow-carol-example-com"),
            "user-carol-example-com-clusterrole-admin",
        )
        .unwrap();
    assert_eq!(rb["roleRef"]["name"], "kubeflow-admin");
    let ap = fk
        .get(
            "security.istio.io/v1beta1",
            "AuthorizationPolicy",
            Some("kubeflow-carol-example-com"),
            "user-carol-example-com-clusterrole-admin",
        )
        .unwrap();
    assert!(ap["spec"].to_string().contains("ml-pipeline-ui"), "{ap}");
    let out = ok(&args);
    assert_eq!(out.matches("unchanged").count(), 3, "{out}");
}
