//! The world the guided-upgrade tests run in: the strict fake API servers (structural schemas,
//! ACP's plugin controller that checks forms and dependencies, Captain, an AML operator that
//! acts only when the test — a person — upgrades it), the real OCI registry, the real MariaDB
//! and PostgreSQL, an MLflow 2.6 database made by MLflow 2.6, and on request a real MLflow 3.1.1
//! server. The test-side controllers here are what a real cluster has besides: Deployments
//! roll out, the Kubeflow chart's Profiles go with Kubeflow Base, the mlflow plugin brings its
//! Service.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fakekube::{AmlOperator, ChangeKind, FakeKube, Handle};
use serde_json::{Value, json};

use super::cluster::{self, GLOBAL, UPGRADE_EXTRA, WORKLOAD, writes};
use super::pg::{PG, PgDb};
use super::registry::{Registry, unique_prefix};
use super::*;

pub const GLOBAL_MORE: &str = include_str!("../../testdata/kube/global-1.3-more.yaml");
pub const CHART: &str = include_str!("../../testdata/kube/aml-1.3-chart.yaml");
pub const PLUGINS: &str = include_str!("../../testdata/kube/aml-1.3-plugins.yaml");

pub const MYSQL_PASSWORD: &str = "upgrade-test-pw";
pub const MYSQL_PASSWORD_B64: &str = "dXBncmFkZS10ZXN0LXB3";
/// AML's live 1.3 database account in the fixtures (`root`, "fixture-mysql-root").
pub const LIVE_AML_USER: &str = "root";
pub const LIVE_AML_PASSWORD_B64: &str = "Zml4dHVyZS1teXNxbC1yb290";
pub const PG_PASSWORD: &str = "Pg-upgrade-S3cret";
pub const OIDC_REDIRECT: &str = "https://192.168.139.133:30665/oauth2/callback";
pub const PLUGINS_14: [(&str, &str); 5] = [
    ("kfbase", "v1.10.1"),
    ("kfp", "v2.4.1"),
    ("volcano", "v1.10.1"),
    ("kftraining", "v1.9.2"),
    ("mlflow", "v3.1.1"),
];
pub const IMAGES: [&str; 3] = [
    "mlops/llm-trainer:v1.4.3",
    "mlops/buildkit-gitlfs:v0.13-rootless-aml",
    "mlops/buildkit:v0.15.2-aml",
];

/// Which 1.3 installation the lab holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum World {
    /// business-1: 1.3 plugins as ModuleInfos and the kubeflow chart application, three user
    /// namespaces with notebooks, an MLflow 2.6 database.
    Full,
    /// business-3: 1.3 as a chart application only.
    Chart,
    /// business-2: 1.3 as plugin ModuleInfos only.
    Plugins,
}

impl World {
    pub fn cluster(self) -> &'static str {
        match self {
            World::Full => "business-1",
            World::Chart => "business-3",
            World::Plugins => "business-2",
        }
    }
}

pub struct LabOptions {
    pub world: World,
    /// The ACP global cluster is a second API server (context `global`).
    pub split: bool,
    /// Run a real MLflow 3.1.1 server on the target database for the final check.
    pub mlflow_server: bool,
    /// The late fine-tune job runs until the test finishes it (`finish_late_finetune`), so the
    /// drain step waits for as long as the test needs.
    pub hold_finetune: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            world: World::Full,
            split: false,
            mlflow_server: false,
            hold_finetune: false,
        }
    }
}

/// Things a test does at a moment the run reaches (each once).
pub type Hooks = Arc<Mutex<Vec<Box<dyn FnOnce() + Send>>>>;

pub struct Lab {
    pub world: World,
    pub fk: FakeKube,
    pub global: Option<FakeKube>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub aml: TestDb,
    pub mlflow: Option<TestDb>,
    pub pg: PgDb,
    pub registry: Registry,
    /// The lab's repository prefix in the shared registry.
    pub prefix: String,
    pub operator: AmlOperator,
    /// Deployments the test-side controller never makes Available.
    pub stuck: Arc<Mutex<BTreeSet<String>>>,
    /// Run (once each) just before the person upgrades the operator.
    pub before_operator_upgrade: Hooks,
    _mlflow_server: Arc<Mutex<Option<super::mlflow::Server>>>,
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

/// The Deployment controller: a Deployment whose spec changed rolls out (observedGeneration,
/// updated/available replicas, Available) after a moment, unless the test made it stuck.
pub fn deployments_roll_out(fk: &FakeKube, stuck: Arc<Mutex<BTreeSet<String>>>) {
    fk.on_change(move |c, h| {
        if !c.is("apps", "Deployment") || c.kind == ChangeKind::Deleted {
            return;
        }
        let o = &c.object;
        let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
        let current = o["status"]["observedGeneration"] == o["metadata"]["generation"]
            && o["status"]["availableReplicas"].as_i64() == Some(want);
        let key = format!("{}/{}", c.namespace().unwrap_or(""), c.name());
        if current || stuck.lock().unwrap().contains(&key) {
            return;
        }
        let (ns, name) = (c.namespace().unwrap_or("").to_string(), c.name().to_string());
        h.after(Duration::from_millis(200), move |h| {
            h.update("apps/v1", "Deployment", Some(&ns), &name, |o| {
                let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
                o["status"] = json!({
                    "observedGeneration": o["metadata"]["generation"],
                    "replicas": want, "updatedReplicas": want, "readyReplicas": want,
                    "availableReplicas": want,
                    "conditions": [
                        {"type": "Available", "status": if want > 0 { "True" } else { "False" }, "reason": "MinimumReplicasAvailable"},
                        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                    ],
                });
            });
        });
    });
}

/// Uninstalling Kubeflow Base (its plugin, or the 1.3 kubeflow chart) takes the Profiles and
/// with them the user namespaces, as Kubeflow's own controllers do.
fn kubeflow_base_takes_profiles(fk: &FakeKube, global: &FakeKube, cluster: &'static str) {
    let take = |h: &Handle| {
        for p in h.list("kubeflow.org/v1", "Profile", None) {
            let name = p["metadata"]["name"].as_str().unwrap().to_string();
            h.delete("kubeflow.org/v1", "Profile", None, &name);
            h.delete("v1", "Namespace", None, &name);
        }
    };
    let h = fk.handle();
    global.on_change(move |c, _| {
        if c.is("cluster.alauda.io", "ModuleInfo")
            && c.kind == ChangeKind::Deleted
            // The platform renaming a new ModuleInfo is no uninstall.
            && c.object["metadata"]["annotations"][fakekube::plugins::RENAMED_ANNOTATION].is_null()
            && c.object["metadata"]["labels"]["cpaas.io/module-name"] == "kfbase"
            && c.object["metadata"]["labels"]["cpaas.io/cluster-name"] == cluster
        {
            take(&h);
        }
    });
    fk.on_change(move |c, h| {
        if c.is("app.alauda.io", "HelmRequest") && c.kind == ChangeKind::Deleted {
            take(h);
        }
    });
}

/// The mlflow 1.4 plugin, once Running, serves through Service kubeflow/mlflow.
fn mlflow_plugin_serves(fk: &FakeKube, global: &FakeKube, cluster: &'static str) {
    let h = fk.handle();
    global.on_change(move |c, _| {
        let o = &c.object;
        if c.is("cluster.alauda.io", "ModuleInfo")
            && c.kind != ChangeKind::Deleted
            && o["metadata"]["labels"]["cpaas.io/module-name"] == "mlflow"
            && o["metadata"]["labels"]["cpaas.io/cluster-name"] == cluster
            && o["status"]["phase"] == "Running"
            && o["spec"]["version"] == "v3.1.1"
        {
            let _ = h.create(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "mlflow", "namespace": "kubeflow"},
                "spec": {"selector": {"app": "mlflow"}, "ports": [{"name": "http", "port": 5000}]}}));
        }
    });
}

/// The global cluster's `Cluster` record of `cluster` lists `url` as its API server.
pub fn point_cluster_at(g: &FakeKube, cluster: &str, url: &str) {
    assert!(g.update(
        "clusterregistry.k8s.io/v1alpha1",
        "Cluster",
        Some("kube-public"),
        cluster,
        |o| {
            o["spec"]["kubernetesApiEndpoints"]["serverEndpoints"] =
                json!([{"clientCIDR": "0.0.0.0/0", "serverAddress": url}])
        },
    ));
}

/// An MLflow 2.6 database seeded through MLflow 2.6's own store.
pub fn mlflow_26(db: &TestDb, artifacts: &Path) {
    let venv = super::mlflow::venvs().0.clone();
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

fn plugins_toml() -> String {
    format!(
        r#"[[install.plugins]]
module = "kfbase"
version = "v1.10.1"
config = {{ istioGatewaySelector = {{ istio = "wy-kubeflow-gw-kubeflow-gw" }}, oidcRedirectURL = "{OIDC_REDIRECT}" }}
[[install.plugins]]
module = "kfp"
version = "v2.4.1"
config = {{ mysql = {{ builtin = true }}, minio = {{ builtin = true }} }}
[[install.plugins]]
module = "volcano"
version = "v1.10.1"
[[install.plugins]]
module = "kftraining"
version = "v1.9.2"
config = {{ volcanoScheduling = {{ enabled = true }} }}
[[install.plugins]]
module = "mlflow"
version = "v3.1.1"
config = {{ pgHost = "127.0.0.1", pgPort = 5432 }}
"#
    )
}

impl Lab {
    pub fn new(opts: LabOptions) -> Lab {
        let world = opts.world;
        let cluster = world.cluster();
        let workload: &[&str] = match world {
            World::Full => &[WORKLOAD, UPGRADE_EXTRA],
            World::Chart => &[CHART, UPGRADE_EXTRA],
            World::Plugins => &[PLUGINS, UPGRADE_EXTRA],
        };
        let global: &[&str] = &[GLOBAL, GLOBAL_MORE];
        let (fk, global_fk) = if opts.split {
            (cluster::load(workload), Some(cluster::load(global)))
        } else {
            (cluster::load(&[workload, global].concat()), None)
        };
        let g = global_fk.as_ref().unwrap_or(&fk);
        // The platform registered this lab's workload cluster at the fake's address.
        point_cluster_at(g, cluster, &fk.https_url());
        fakekube::controllers::plugin_controller(g, Duration::from_millis(300));
        fakekube::controllers::chart_uninstall(&fk, Duration::from_millis(300));
        fakekube::controllers::volcano_jobs_finish(&fk, Duration::from_millis(1500));
        let stuck = Arc::new(Mutex::new(BTreeSet::new()));
        deployments_roll_out(&fk, stuck.clone());
        kubeflow_base_takes_profiles(&fk, g, cluster);
        mlflow_plugin_serves(&fk, g, cluster);
        let operator = AmlOperator::new(&fk).resets_features(true);
        let dir = tempfile::tempdir().unwrap();
        let (kubeconfig, contexts) = match &global_fk {
            None => (
                fk.write_kubeconfig(dir.path(), FakeKube::ADMIN_TOKEN),
                String::new(),
            ),
            Some(gk) => (
                two_cluster_kubeconfig(dir.path(), &fk, gk),
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
        let artifacts = dir.path().join("mlartifacts");
        let mlflow = (world == World::Full).then(|| {
            let db = TestDb::create("upg_mlf");
            mlflow_26(&db, &artifacts);
            let model = artifacts.join("1/run-0/artifacts/model/MLmodel");
            std::fs::create_dir_all(model.parent().unwrap()).unwrap();
            std::fs::write(&model, "flavors:\n  pytorch: {}\n").unwrap();
            db
        });
        let pg = PgDb::new("upg_pg");
        let registry = Registry::get();
        let prefix = unique_prefix();
        for i in IMAGES {
            registry.push_image(&format!("{prefix}/{i}"));
        }
        // The 1.3 ConfigMap references llm-trainer in this lab's part of the registry.
        let llm = format!(
            "{}/{prefix}/mlops/llm-trainer:v1.3.2-rc.4.g7c1d2e9a",
            registry.host
        );
        fk.update(
            "v1",
            "ConfigMap",
            Some("kubeflow"),
            "aml-image-builder-config",
            |o| {
                let key = o["data"]
                    .as_object()
                    .and_then(|d| {
                        d.iter()
                            .find(|(_, v)| v.as_str().is_some_and(|s| s.contains("/llm-trainer:")))
                            .map(|(k, _)| k.clone())
                    })
                    .unwrap_or_else(|| "LLM_TRAINER_IMAGE".into());
                o["data"][key] = json!(llm);
            },
        );
        let mlflow_server = Arc::new(Mutex::new(None));
        let (mlflow_section, namespaces) = match (&mlflow, world) {
            (Some(db), _) => (
                format!(
                    "[mysql.mlflow]\nurl = \"mysql://amlupgrade@127.0.0.1:3306\"\ndatabases = [\"{}\"]\n",
                    db.name
                ),
                "[\"kubeflow\", \"team-a\"]",
            ),
            (None, _) => (String::new(), "[\"kubeflow\", \"team-c\"]"),
        };
        let mlflow_settings = match &mlflow {
            None => "migrate = false\n".to_string(),
            Some(_) => format!(
                "artifacts_to = \"{}-3\"\n{}",
                artifacts.display(),
                if opts.mlflow_server {
                    "server_url = \"SERVER_URL\"\n"
                } else {
                    "check_server = false\n"
                }
            ),
        };
        let config = dir.path().join("upgrade.toml");
        std::fs::write(
            &config,
            format!(
                r#"repository = "{repo}"
[kubernetes]
kubeconfig = "{kc}"
{contexts}cluster_name = "{cluster}"
[mysql.aml]
url = "mysql://amlupgrade@127.0.0.1:3306"
databases = ["{aml}"]
{mlflow_section}[postgres]
url = "{PG}/{pg}"
[preflight]
storage_class = "sc-topolvm"
servicemesh_name = "{cluster}"
[images]
registry = "{reg}"
ca_file = "{ca}"
username = "{user}"
required = [{required}]
llm_trainer = "{prefix}/mlops/llm-trainer:v1.4.3"
timeout = "30s"
poll = "200ms"
[drain]
timeout = "30s"
poll = "200ms"
running_sql = "SELECT COUNT(*) FROM `{aml}`.finetune_jobs WHERE status = 'Running'"
[snapshot]
{artifacts_line}[notebooks]
delete = {notebooks}
recreate = {notebooks}
[uninstall]
timeout = "20s"
{no_chart}[operator]
timeout = "60s"
poll = "200ms"
[install]
timeout = "20s"
poll = "200ms"
{plugins}
[mlflow]
{mlflow_settings}[features]
training_pvc_size = "20Gi"
rollout_timeout = "20s"
image_builder_namespaces = {namespaces}
"#,
                repo = dir.path().join("repo").display(),
                kc = kubeconfig.display(),
                aml = aml.name,
                pg = pg.name,
                reg = registry.url,
                ca = registry.ca_file.display(),
                user = registry.user,
                required = IMAGES
                    .iter()
                    .map(|i| format!("\"{prefix}/{i}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                artifacts_line = if mlflow.is_some() {
                    format!("mlflow_artifacts = \"{}\"\n", artifacts.display())
                } else {
                    String::new()
                },
                notebooks = world == World::Full,
                plugins = plugins_toml(),
                // business-2's 1.3 was plugins only: said, not guessed.
                no_chart = if world == World::Plugins {
                    "chart = \"\"\n"
                } else {
                    ""
                },
            ),
        )
        .unwrap();
        // The operator creates the repository on purpose; the upgrade never creates one.
        super::ok(&[
            "repo",
            "init",
            "--repo",
            dir.path().join("repo").to_str().unwrap(),
        ]);
        let before_operator_upgrade: Hooks = Arc::default();
        let lab = Lab {
            world,
            fk,
            global: global_fk,
            dir,
            config,
            aml,
            mlflow,
            pg,
            registry,
            prefix,
            operator,
            stuck,
            before_operator_upgrade,
            _mlflow_server: mlflow_server.clone(),
        };
        if opts.mlflow_server {
            // The mlflow 1.4 plugin's server: up before the migration, on its (empty) database,
            // as the plugin starts it; the migration then fills what it created.
            let server = super::mlflow::Server::start(
                &super::mlflow::venvs().1,
                &format!("postgresql://postgres@127.0.0.1:5432/{}", lab.pg.name),
                lab.dir.path().join("mlartifacts-3"),
            );
            lab.edit_config(|s| s.replace("SERVER_URL", &server.url));
            *mlflow_server.lock().unwrap() = Some(server);
        }
        // A person upgrades the operator in OperatorHub when the run asks for it.
        let (op, hooks) = (lab.operator.clone(), lab.before_operator_upgrade.clone());
        when_journal_shows(&lab.dir, "wait-operator", "waiting", move || {
            for f in hooks.lock().unwrap().drain(..) {
                f();
            }
            op.upgrade("v1.4.0");
        });
        if world == World::Full {
            lab.late_finetune(opts.hold_finetune);
        }
        lab
    }

    /// A fine-tune job (and its record) still running when the upgrade starts: unless `held`,
    /// they finish once the drain step has seen the job running and looked again (so it did
    /// wait for it), whatever the time that takes.
    fn late_finetune(&self, held: bool) {
        self.fk
            .create(json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
            "metadata": {"name": "late-finetune", "namespace": "team-a"},
            "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {"containers": [{"name": "pytorch", "image": "x"}]}}}}}}))
            .unwrap();
        if held {
            return;
        }
        let (h, aml_db) = (self.fk.handle(), self.aml.name.clone());
        when_journal_shows(&self.dir, "drain", "started", move || {
            let lists = || {
                h.requests()
                    .iter()
                    .filter(|r| r.method == "GET" && r.path.ends_with("/pytorchjobs"))
                    .count()
            };
            let seen = lists();
            super::gate::wait_for("the drain step to look at the running job twice", || {
                (lists() >= seen + 2).then_some(())
            });
            finish_late_finetune(&h);
            sql(
                Some(&aml_db),
                "UPDATE finetune_jobs SET status = 'Succeeded' WHERE id = 250",
            );
        });
    }

    pub fn cfg(&self) -> &str {
        self.config.to_str().unwrap()
    }

    pub fn edit_config(&self, f: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        std::fs::write(&self.config, f(text)).unwrap();
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AMLMIGRATE_MYSQL_PASSWORD", MYSQL_PASSWORD.into()),
            ("PGPASSWORD", PG_PASSWORD.into()),
            (
                "AMLMIGRATE_REGISTRY_PASSWORD",
                self.registry.password.clone(),
            ),
        ]
    }

    pub fn upgrade(&self, args: &[&str]) -> Run {
        let mut all = vec!["upgrade"];
        all.extend_from_slice(args);
        all.extend(["--config", self.cfg()]);
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        amlmigrate_env(&all, &env)
    }

    /// `amlmigrate recover --config <the lab's> args…`.
    pub fn recover(&self, args: &[&str]) -> Run {
        self.recover_env(args, &[])
    }

    /// [`Lab::recover`] with `more` environment variables.
    pub fn recover_env(&self, args: &[&str], more: &[(&str, &str)]) -> Run {
        let mut all = vec!["recover", "--config", self.cfg()];
        all.extend_from_slice(args);
        let env = self.env();
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(more);
        amlmigrate_env(&all, &env)
    }

    /// `upgrade run --yes --quiet` as a child process (to kill or interrupt).
    pub fn spawn_run(&self) -> std::process::Child {
        let mut cmd = Command::new(bin());
        cmd.args(["upgrade", "run", "--yes", "--quiet", "--config", self.cfg()])
            .stderr(std::process::Stdio::piped());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    pub fn journal(&self) -> Vec<Value> {
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

    /// The events of one step in the latest run.
    pub fn events(&self, step: &str) -> Vec<String> {
        self.journal()
            .iter()
            .filter(|e| e["step"] == step)
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    }

    /// Writes (not dry runs) served by the workload and, when separate, the global cluster.
    pub fn writes(&self) -> usize {
        writes(&self.fk) + self.global.as_ref().map(writes).unwrap_or(0)
    }

    /// The ACP global cluster (plugins, dex, ServiceMesh).
    pub fn g(&self) -> &FakeKube {
        self.global.as_ref().unwrap_or(&self.fk)
    }

    /// This lab's cluster's plugin ModuleInfos.
    pub fn module_infos(&self) -> Vec<Value> {
        self.g()
            .list("cluster.alauda.io/v1alpha1", "ModuleInfo", None)
            .into_iter()
            .filter(|o| o["metadata"]["labels"]["cpaas.io/cluster-name"] == self.world.cluster())
            .collect()
    }

    pub fn plugin(&self, module: &str) -> Vec<Value> {
        self.module_infos()
            .into_iter()
            .filter(|o| o["metadata"]["labels"]["cpaas.io/module-name"] == module)
            .collect()
    }

    pub fn report(&self) -> Value {
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

    /// The image reference in this lab's part of the registry.
    pub fn image(&self, i: &str) -> String {
        format!("{}/{i}", self.prefix)
    }

    /// Every file the run wrote into the repository's runs/ (journal, reports).
    pub fn run_files(&self) -> Vec<PathBuf> {
        walk_if_exists(&self.dir.path().join("repo/runs"))
    }
}

/// The end state every successful run must reach.
pub fn assert_upgraded(lab: &Lab) {
    let fk = &lab.fk;
    // One ModuleInfo per plugin, at its 1.4 version, Running; no 1.3 plugin left.
    for (m, v) in PLUGINS_14 {
        let mine = lab.plugin(m);
        assert_eq!(mine.len(), 1, "plugin {m}: {mine:?}");
        assert_eq!(mine[0]["spec"]["version"], v, "{m}");
        assert_eq!(
            mine[0]["status"]["phase"], "Running",
            "{m}: {}",
            mine[0]["status"]
        );
    }
    assert!(
        fk.list("app.alauda.io/v1", "HelmRequest", None).is_empty(),
        "the kubeflow chart application is still there"
    );
    // MLflow's form: the whole of it, the password from the migration's source.
    let mlflow = &lab.plugin("mlflow")[0]["spec"]["config"];
    assert_eq!(mlflow["pgPassword"], PG_PASSWORD, "{mlflow}");
    assert_eq!(mlflow["pgUsername"], "postgres", "{mlflow}");
    // Features and the MySQL settings: one credential pair, the live host kept; AML's own live
    // account unless the configuration names the snapshot's source as AML's.
    let named = std::fs::read_to_string(&lab.config)
        .unwrap()
        .contains("\ncredentials = \"aml\"");
    let (user, password) = if named {
        ("amlupgrade", MYSQL_PASSWORD_B64)
    } else {
        assert_snapshot_account_not_amls(lab);
        (LIVE_AML_USER, LIVE_AML_PASSWORD_B64)
    };
    let ac = fk
        .get(
            "amlclusters.aml.dev/v1alpha1",
            "AmlCluster",
            None,
            "default",
        )
        .unwrap();
    let values = &ac["spec"]["values"];
    assert_eq!(
        values["experimentalFeatures"],
        json!({"datasets": true, "imageBuilder": true, "tuneModels": true})
    );
    assert_eq!(values["global"]["mysql"]["user"], user);
    let secret_ref = &values["global"]["mysql"]["passwordSecretRef"];
    let secret = fk
        .get(
            "v1",
            "Secret",
            secret_ref["namespace"].as_str(),
            secret_ref["name"].as_str().unwrap(),
        )
        .unwrap();
    assert_eq!(secret["data"]["password"], password);
    let aml = fk
        .get("amls.aml.dev/v1alpha1", "Aml", None, "default-aml")
        .unwrap();
    assert_eq!(
        aml["spec"]["values"]["amlService"]["trainingPVCSize"],
        "20Gi"
    );
    let ns = if lab.world == World::Full {
        "team-a"
    } else {
        "team-c"
    };
    let cm = fk
        .get("v1", "ConfigMap", Some(ns), "aml-image-builder-config")
        .unwrap();
    assert_eq!(cm["data"]["MODEL_REPO_BUILDER_DB_USER"], user);
    let builder = fk
        .get("v1", "Secret", Some(ns), "aml-image-builder-secret")
        .unwrap();
    assert_eq!(builder["data"]["MODEL_REPO_BUILDER_DB_PASSWORD"], password);
    let deploy = fk
        .get("apps/v1", "Deployment", Some("kubeflow"), "aml-api-deploy")
        .unwrap();
    assert!(
        deploy["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string()
    );
    // The llm-trainer tag the 1.4 ConfigMap references points at the pushed image.
    let pushed = lab
        .registry
        .digest(&lab.image("mlops/llm-trainer:v1.4.3"))
        .unwrap();
    assert_eq!(
        lab.registry.digest(&lab.image(&format!(
            "mlops/llm-trainer:{}",
            fakekube::operator::LLM_TRAINER_TAG_14
        ))),
        Some(pushed),
        "the 1.4 llm-trainer tag was not made to point at the pushed image"
    );
    assert!(
        !lab.registry
            .has(&lab.image("mlops/llm-trainer:v1.3.2-rc.4.g7c1d2e9a")),
        "the 1.3 tag was copied"
    );
    // The global cluster's settings were added, the existing provider kept.
    let dex = lab
        .g()
        .get("v1", "ConfigMap", Some("cpaas-system"), "dex-configmap")
        .unwrap();
    assert!(
        dex["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .contains(OIDC_REDIRECT)
    );
    let mesh = lab
        .g()
        .get(
            "asm.alauda.io/v1alpha1",
            "ServiceMesh",
            Some("cpaas-system"),
            lab.world.cluster(),
        )
        .unwrap()
        .to_string();
    assert!(mesh.contains("oauth2-proxy-kubeflow"), "{mesh}");
    // Data: job records as before.
    assert_eq!(
        sql(Some(&lab.aml.name), "SELECT COUNT(*) FROM finetune_jobs").trim(),
        "250"
    );
    if lab.world == World::Full {
        assert_full_world_upgraded(lab);
    }
}

fn assert_full_world_upgraded(lab: &Lab) {
    let fk = &lab.fk;
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
    super::cluster::wait_until("every claim Bound", || {
        let c = fk.list("v1", "PersistentVolumeClaim", None);
        c.len() == 8 && c.iter().all(|c| c["status"]["phase"] == "Bound")
    });
    let copied = lab
        .dir
        .path()
        .join("mlartifacts-3/1/run-0/artifacts/model/MLmodel");
    assert_eq!(
        std::fs::read_to_string(&copied).unwrap(),
        "flavors:\n  pytorch: {}\n"
    );
    assert_eq!(
        super::pg::psql(&lab.pg.name, "SELECT count(*) FROM metrics").trim(),
        "300"
    );
    assert_eq!(
        super::pg::psql(&lab.pg.name, "SELECT count(*) FROM runs").trim(),
        "6"
    );
}

/// The fine-tune job the drain step waits for succeeds.
pub fn finish_late_finetune(h: &Handle) {
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
pub fn when_journal_shows(
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

pub fn walk_if_exists(dir: &Path) -> Vec<PathBuf> {
    if dir.exists() { walk(dir) } else { Vec::new() }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
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

/// The snapshot account (`[mysql.aml]`: user amlupgrade, its password) is in none of the
/// workload cluster's Secrets, ConfigMaps, AmlClusters or Amls.
pub fn assert_snapshot_account_not_amls(lab: &Lab) {
    for (api, kind) in [
        ("v1", "Secret"),
        ("v1", "ConfigMap"),
        ("amlclusters.aml.dev/v1alpha1", "AmlCluster"),
        ("amls.aml.dev/v1alpha1", "Aml"),
    ] {
        for o in lab.fk.list(api, kind, None) {
            let text = o.to_string();
            for bad in ["amlupgrade", MYSQL_PASSWORD, MYSQL_PASSWORD_B64] {
                assert!(
                    !text.contains(bad),
                    "{kind} {}/{} holds the snapshot account's {bad:?}: {text}",
                    o["metadata"]["namespace"],
                    o["metadata"]["name"]
                );
            }
        }
    }
}

/// Every secret of a lab, in clear and base64: none may appear in output or files.
pub fn secrets(lab: &Lab) -> Vec<String> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        MYSQL_PASSWORD.into(),
        MYSQL_PASSWORD_B64.into(),
        PG_PASSWORD.into(),
        b64(PG_PASSWORD),
        lab.registry.password.clone(),
    ]
}
