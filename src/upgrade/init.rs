//! `amlmigrate upgrade init`: a starting `upgrade.toml` read from the live 1.3 cluster — the
//! cluster's name, AmlCluster `global.mysql`, Aml `amlService`, the installed 1.3 plugins, the
//! newest published 1.4 ModuleConfigs and what their forms need (values carried over from the
//! 1.3 plugins where the form has the same field), kfbase's `oidcRedirectURL`, the storage
//! classes, the user namespaces, the ServiceMesh and the registry. What only a person can decide
//! (passwords' sources, how this machine reaches each database, PostgreSQL for MLflow 3.1.1,
//! deleting notebooks) is marked `# DECIDE:`; a value left empty there stops `upgrade plan`
//! with a message naming it, so nothing runs on a guess.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::error::Result;
use crate::kube::{Cluster, KubeOptions, Role, at, name_of, str_at};

pub struct InitOptions {
    pub access: KubeOptions,
    pub repository: String,
    /// The workload cluster's name in ACP, when the global cluster holds plugins of several.
    pub cluster_name: Option<String>,
}

const MODULES_14: [&str; 5] = ["kfbase", "kfp", "volcano", "kftraining", "mlflow"];
const UNINSTALL: [&str; 4] = ["mlflow", "kftraining", "kfp", "kfbase"];

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn inline(v: &Value) -> String {
    match toml::Value::try_from(v) {
        Ok(t) => t.to_string(),
        Err(_) => q(&v.to_string()),
    }
}

/// What was read from the live clusters.
#[derive(Default)]
struct Live {
    cluster_names: Vec<String>,
    /// The platform's name of the cluster the context points at.
    platform_name: Option<String>,
    mysql: Value,
    aml_service: Value,
    plugins_13: BTreeMap<String, Value>,
    configs_14: BTreeMap<String, Value>,
    redirect: Option<(String, String)>,
    storage_classes: Vec<(String, bool)>,
    user_namespaces: Vec<String>,
    builder_namespaces: Vec<String>,
    mesh: Option<(String, String, Value)>,
    registry: Option<String>,
}

async fn list(c: &Cluster, kind: &str, group: &str, labels: Option<&str>) -> Result<Vec<Value>> {
    match c.resolve(kind, Some(group)) {
        Some(r) => c.list(&r, None, labels, None).await,
        None => Ok(Vec::new()),
    }
}

async fn read(w: &Cluster, g: &Cluster, name: Option<&str>) -> Result<Live> {
    let mut live = Live::default();
    if let Some(ac) = list(w, "AmlCluster", "amlclusters.aml.dev", None)
        .await?
        .into_iter()
        .find(|o| name_of(o) == "default")
    {
        live.mysql = ac["spec"]["values"]["global"]["mysql"].clone();
    }
    if let Some(aml) = list(w, "Aml", "amls.aml.dev", None)
        .await?
        .into_iter()
        .find(|o| name_of(o) == "default-aml")
    {
        live.aml_service = aml["spec"]["values"]["amlService"].clone();
    }
    read_plugins(g, name, &mut live).await?;
    live.redirect = redirect_uri(g, &live).await?;
    for sc in list(w, "StorageClass", "storage.k8s.io", None).await? {
        let default =
            sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true";
        live.storage_classes
            .push((name_of(&sc).to_string(), default));
    }
    live.user_namespaces = crate::kube::pvc::user_namespaces(w, &[]).await?;
    for cm in list(w, "ConfigMap", "", None).await? {
        if name_of(&cm) == "aml-image-builder-config"
            && let Some(ns) = crate::kube::namespace_of(&cm)
        {
            live.builder_namespaces.push(ns.to_string());
            if live.registry.is_none() {
                live.registry = cm["data"]
                    .as_object()
                    .into_iter()
                    .flat_map(|d| d.values())
                    .filter_map(Value::as_str)
                    .find(|v| v.contains("/llm-trainer:"))
                    .and_then(|v| v.split('/').next())
                    .map(|h| format!("https://{h}"));
            }
        }
    }
    let name = match live.cluster_names.as_slice() {
        [one] => one.clone(),
        _ => String::new(),
    };
    for m in list(g, "ServiceMesh", "asm.alauda.io", None).await? {
        if !name.is_empty()
            && (str_at(&m, "spec.cluster") == Some(name.as_str()) || name_of(&m) == name)
        {
            live.mesh = Some((
                crate::kube::namespace_of(&m).unwrap_or("").to_string(),
                name_of(&m).to_string(),
                m.clone(),
            ));
        }
    }
    Ok(live)
}

/// The installed plugins (of this cluster, once it is known which) and the newest published
/// 1.4 packages.
async fn read_plugins(g: &Cluster, name: Option<&str>, live: &mut Live) -> Result<()> {
    let plugins = list(
        g,
        "ModuleInfo",
        "cluster.alauda.io",
        Some("cpaas.io/module-type=plugin"),
    )
    .await?;
    for o in &plugins {
        let labels = &o["metadata"]["labels"];
        let module = labels["cpaas.io/module-name"].as_str().unwrap_or("");
        let cluster = labels["cpaas.io/cluster-name"].as_str().unwrap_or("");
        if !cluster.is_empty()
            && MODULES_14.contains(&module)
            && !live.cluster_names.iter().any(|x| x == cluster)
        {
            live.cluster_names.push(cluster.to_string());
        }
    }
    if let Some(n) = name {
        live.cluster_names = vec![n.to_string()];
    }
    // The plugins of this cluster, when it is known which.
    if let [mine] = live.cluster_names.as_slice() {
        for o in &plugins {
            let labels = &o["metadata"]["labels"];
            let module = labels["cpaas.io/module-name"].as_str().unwrap_or("");
            if labels["cpaas.io/cluster-name"] == mine.as_str() && MODULES_14.contains(&module) {
                live.plugins_13.insert(module.to_string(), o.clone());
            }
        }
    }
    for mc in list(g, "ModuleConfig", "cluster.alauda.io", None).await? {
        let module = mc["metadata"]["labels"]["cpaas.io/module-name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let version = str_at(&mc, "spec.version").unwrap_or("");
        if !MODULES_14.contains(&module.as_str()) || mc["status"]["readyForDeploy"] == false {
            continue;
        }
        let newer = live.configs_14.get(&module).is_none_or(|have| {
            let had = str_at(have, "spec.version").unwrap_or("");
            crate::upgrade::steps::newer(version, had)
        });
        let installed = live
            .plugins_13
            .get(&module)
            .and_then(|o| str_at(o, "spec.version"));
        if newer && installed != Some(version) {
            live.configs_14.insert(module, mc);
        }
    }
    Ok(())
}

/// kfbase's oidcRedirectURL: the 1.3 kfbase config's, else the one …/oauth2/callback URI dex
/// lists; (value, where it came from).
async fn redirect_uri(g: &Cluster, live: &Live) -> Result<Option<(String, String)>> {
    if let Some(u) = live
        .plugins_13
        .get("kfbase")
        .and_then(|o| str_at(o, "spec.config.oidcRedirectURL"))
        .filter(|u| !u.is_empty())
    {
        return Ok(Some((u.to_string(), "the 1.3 kfbase plugin".into())));
    }
    let cm = g.need("ConfigMap", "")?;
    let Some(dex) = g.get(&cm, Some("cpaas-system"), "dex-configmap").await? else {
        return Ok(None);
    };
    let conf: Value = serde_saphyr::from_str(dex["data"]["config.yaml"].as_str().unwrap_or(""))
        .unwrap_or_default();
    let found: Vec<String> = conf["staticClients"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["redirectURIs"].as_array().cloned().unwrap_or_default())
        .filter_map(|u| u.as_str().map(String::from))
        .filter(|u| u.ends_with("/oauth2/callback"))
        .collect();
    Ok(match found.as_slice() {
        [one] => Some((one.clone(), "dex's redirectURIs".into())),
        _ => None,
    })
}

/// The starting configuration, as TOML with comments.
pub async fn init(opts: &InitOptions) -> Result<String> {
    let w = Cluster::connect(&opts.access, Role::Workload).await?;
    let g = Cluster::connect(&opts.access, Role::Global).await?;
    let platform = match crate::upgrade::platform::cluster_name(&w, &g).await? {
        crate::upgrade::platform::Named::Found(n) => Some(n),
        _ => None,
    };
    let name = opts.cluster_name.as_deref().or(platform.as_deref());
    let mut live = read(&w, &g, name).await?;
    live.platform_name = platform;
    Ok(render(opts, &live))
}

fn render(opts: &InitOptions, live: &Live) -> String {
    let mut s = String::new();
    let a = &opts.access;
    let _ = writeln!(
        s,
        "# Written by `amlmigrate upgrade init` from the live cluster. Check every line; each\n\
         # `# DECIDE:` is for a person, and an empty value there stops `upgrade plan` until set.\n\
         # examples/upgrade-1.3-to-1.4.toml documents every key. No password belongs here.\n"
    );
    let _ = writeln!(s, "repository = {}\n\n[kubernetes]", q(&opts.repository));
    if let Some(k) = &a.kubeconfig {
        let _ = writeln!(s, "kubeconfig = {}", q(&k.display().to_string()));
    }
    for (key, v) in [
        ("context", &a.context),
        ("global_context", &a.global_context),
    ] {
        if let Some(v) = v {
            let _ = writeln!(s, "{key} = {}", q(v));
        }
    }
    match live.cluster_names.as_slice() {
        [one] if live.platform_name.as_ref() == Some(one) => {
            let _ = writeln!(
                s,
                "cluster_name = {}   # the cluster the kube context points at (Cluster kube-public/{one} of the global cluster)",
                q(one)
            );
        }
        [one] if live.platform_name.is_some() => {
            let _ = writeln!(
                s,
                "cluster_name = {}   # DECIDE: the kube context points at cluster {}, not this one; upgrade run refuses a name that differs",
                q(one),
                live.platform_name.as_deref().unwrap_or("")
            );
        }
        [one] => {
            let _ = writeln!(
                s,
                "cluster_name = {}   # label cpaas.io/cluster-name of its plugins",
                q(one)
            );
        }
        [] => {
            let _ = writeln!(
                s,
                "cluster_name = \"\"   # DECIDE: no plugin ModuleInfo names a cluster; the workload cluster's name in ACP"
            );
        }
        many => {
            let _ = writeln!(
                s,
                "cluster_name = \"\"   # DECIDE: the global cluster has plugins of several clusters: {} (or run init with --cluster-name)",
                many.join(", ")
            );
        }
    }
    render_mysql(&mut s, live);
    render_preflight(&mut s, live);
    render_plugins(&mut s, live);
    render_features(&mut s, live);
    s
}

/// `mysql://user@host:port` of a plugin form's MySQL settings.
fn mysql_url(v: &Value) -> String {
    format!(
        "mysql://{}@{}:{}",
        str_at(v, "user").unwrap_or("root"),
        str_at(v, "host").unwrap_or(""),
        at(v, "port")
            .map(|p| p.to_string())
            .unwrap_or_else(|| "3306".into())
    )
}

fn render_mysql(s: &mut String, live: &Live) {
    let m = &live.mysql;
    let host = str_at(m, "host").unwrap_or("");
    let port = at(m, "port")
        .map(|p| p.to_string().trim_matches('"').to_string())
        .unwrap_or_else(|| "3306".into());
    let user = str_at(m, "user").unwrap_or("root");
    let db = str_at(m, "database").unwrap_or("aml");
    let _ = writeln!(
        s,
        "\n# AmlCluster default global.mysql: {user}@{host}:{port}/{db}\n[mysql.aml]\n\
         url = {}   # DECIDE: the address THIS machine reaches it at (the cluster uses {host}; e.g. a kubectl port-forward)\n\
         databases = [{}]\n\
         # password: $AMLMIGRATE_MYSQL_PASSWORD_AML or password_file (it also goes into the AML Secrets)",
        q(&format!("mysql://{user}@{host}:{port}")),
        q(db)
    );
    let kfp = live
        .plugins_13
        .get("kfp")
        .map(|o| &o["spec"]["config"]["mysql"]);
    let builtin = kfp.is_none_or(|k| k["builtin"] != false);
    if builtin {
        let _ = writeln!(
            s,
            "\n[mysql.kfp]   # Kubeflow Pipelines' built-in MySQL (uninstalled with 1.3: back it up)\n\
             url = \"\"   # DECIDE: e.g. mysql://root@127.0.0.1:13306 with kubectl -n kubeflow port-forward svc/mysql 13306:3306\n\
             databases = [\"mlpipeline\", \"cachedb\", \"metadb\"]"
        );
    } else if let Some(k) = kfp {
        let _ = writeln!(
            s,
            "\n[mysql.kfp]   # the 1.3 Kubeflow Pipelines plugin's external MySQL (must be 5.7)\n\
             url = {}\ndatabases = [\"mlpipeline\", \"cachedb\", \"metadb\"]\nexternal = true",
            q(&mysql_url(k))
        );
    }
    let store = live
        .plugins_13
        .get("mlflow")
        .map(|o| &o["spec"]["config"]["backendStore"]);
    match store.filter(|b| str_at(b, "host").is_some()) {
        Some(b) => {
            let _ = writeln!(
                s,
                "\n[mysql.mlflow]   # the 1.3 MLflow plugin's backend store\n\
                 url = {}   # DECIDE: reachable from here?\ndatabases = [{}]",
                q(&mysql_url(b)),
                q(str_at(b, "database").unwrap_or("mlflow"))
            );
        }
        None => {
            let _ = writeln!(
                s,
                "\n[mysql.mlflow]\nurl = \"\"   # DECIDE: MLflow 2.6's MySQL (not found in the 1.3 mlflow plugin)\ndatabases = [\"mlflow\"]"
            );
        }
    }
    let _ = writeln!(
        s,
        "\n[postgres]\nurl = \"\"   # DECIDE: postgres://USER@HOST:5432/DB for MLflow 3.1.1; password from $PGPASSWORD or password_file"
    );
}

fn render_preflight(s: &mut String, live: &Live) {
    let class = live
        .storage_classes
        .iter()
        .find(|(_, d)| *d)
        .map(|(n, _)| n.clone())
        .or_else(|| str_at(&live.aml_service, "trainingPVCStorageClass").map(String::from))
        .unwrap_or_default();
    let all: Vec<&str> = live
        .storage_classes
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    let _ = writeln!(
        s,
        "\n[preflight]\nstorage_class = {}   # storage classes: {}",
        q(&class),
        all.join(", ")
    );
    if let Some((ns, name, _)) = &live.mesh {
        let _ = writeln!(
            s,
            "servicemesh_namespace = {}\nservicemesh_name = {}",
            q(ns),
            q(name)
        );
    } else {
        let _ = writeln!(
            s,
            "# servicemesh_name = \"\"   # no ServiceMesh of this cluster found in the global cluster"
        );
    }
    let _ = writeln!(
        s,
        "\n[images]\nregistry = {}   # DECIDE: the platform registry (empty skips the image steps)\n\
         ca_file = \"\"   # DECIDE: the CA that signed its certificate (PEM)\n\
         # username = \"\"   # password from $AMLMIGRATE_REGISTRY_PASSWORD",
        q(live.registry.as_deref().unwrap_or(""))
    );
    let _ = writeln!(
        s,
        "\n[notebooks]\ndelete = false   # DECIDE: delete Notebooks and Tensorboards before the uninstall (the article: optional)\nrecreate = false"
    );
    let installed: Vec<String> = live
        .plugins_13
        .iter()
        .map(|(m, o)| {
            format!(
                "{m} {} ({})",
                str_at(o, "spec.version").unwrap_or("?"),
                name_of(o)
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "\n[uninstall]\n# installed now: {}\nplugins = [{}]",
        if installed.is_empty() {
            "no plugin ModuleInfo".to_string()
        } else {
            installed.join(", ")
        },
        UNINSTALL
            .iter()
            .map(|m| q(m))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn render_plugins(s: &mut String, live: &Live) {
    let _ = writeln!(
        s,
        "\n# The 1.4 plugins, the newest published ModuleConfig of each."
    );
    for module in MODULES_14 {
        let _ = writeln!(s, "[[install.plugins]]\nmodule = {}", q(module));
        let Some(mc) = live.configs_14.get(module) else {
            let _ = writeln!(
                s,
                "version = \"\"   # DECIDE: no 1.4 ModuleConfig of {module} published yet (violet push), then its version\n"
            );
            continue;
        };
        let _ = writeln!(
            s,
            "version = {}",
            q(str_at(mc, "spec.version").unwrap_or(""))
        );
        let old = live.plugins_13.get(module).map(|o| &o["spec"]["config"]);
        let mut config = Value::Object(serde_json::Map::new());
        let mut decide = Vec::new();
        let mut secrets = Vec::new();
        let form = crate::upgrade::steps::Form::of(mc);
        for f in &form.fields {
            let key = f.path.as_str();
            let always = f.required && f.depends.is_none();
            if f.secret {
                if module == "mlflow" && key == "pgPassword" {
                    secrets.push(format!("{key} = \"postgres\""));
                } else if always {
                    decide.push(format!(
                        "{key} (secret: secrets = {{ {key} = \"postgres\" or \"mysql.<name>\" }})"
                    ));
                }
                continue;
            }
            let carried = old.and_then(|o| at(o, key)).filter(|v| !v.is_null());
            let redirect = (module == "kfbase" && key == "oidcRedirectURL")
                .then(|| live.redirect.as_ref().map(|(u, _)| Value::from(u.clone())))
                .flatten();
            match carried.cloned().or(redirect) {
                Some(v) => crate::upgrade::steps::set_path(&mut config, key, v),
                None => {
                    let default = at(&form.defaults, key);
                    let empty = default.is_none_or(|d| d.as_str() == Some("") || d.is_null());
                    if always && empty {
                        decide.push(key.to_string());
                    }
                }
            }
        }
        if config.as_object().is_some_and(|c| !c.is_empty()) {
            let _ = writeln!(s, "config = {}", inline(&config));
        }
        if !secrets.is_empty() {
            let _ = writeln!(s, "secrets = {{ {} }}", secrets.join(", "));
        }
        if module == "kfbase" {
            match &live.redirect {
                Some((_, from)) => {
                    let _ = writeln!(s, "# oidcRedirectURL from {from}; dex gets the same URI");
                }
                None => {
                    let _ = writeln!(
                        s,
                        "# DECIDE: oidcRedirectURL (the Kubeflow gateway's …/oauth2/callback); dex gets the same URI"
                    );
                }
            }
        }
        for d in decide {
            let _ = writeln!(s, "# DECIDE: {d}, required by the {module} form");
        }
        let _ = writeln!(s);
    }
}

fn render_features(s: &mut String, live: &Live) {
    let m = &live.mysql;
    let svc = &live.aml_service;
    let _ = writeln!(
        s,
        "[features]   # the live values of AmlCluster default and Aml default-aml, written again after the operator upgrade"
    );
    for (key, v) in [
        ("mysql_host", at(m, "host")),
        ("mysql_port", at(m, "port")),
        ("mysql_database", at(m, "database")),
        ("password_secret_name", at(m, "passwordSecretRef.name")),
        (
            "password_secret_namespace",
            at(m, "passwordSecretRef.namespace"),
        ),
        ("training_pvc_size", at(svc, "trainingPVCSize")),
        (
            "training_pvc_storage_class",
            at(svc, "trainingPVCStorageClass"),
        ),
        ("notebook_storage_class", at(svc, "notebookStorageClass")),
    ] {
        match v.filter(|v| !v.is_null()) {
            Some(v) => {
                let _ = writeln!(s, "{key} = {}", inline(v));
            }
            None => {
                let _ = writeln!(s, "# {key} = …   # DECIDE: not set live");
            }
        }
    }
    let mut ns = live.builder_namespaces.clone();
    ns.sort();
    ns.dedup();
    let _ = writeln!(
        s,
        "image_builder_namespaces = [{}]   # user namespaces: {}",
        ns.iter().map(|n| q(n)).collect::<Vec<_>>().join(", "),
        live.user_namespaces.join(", ")
    );
}
