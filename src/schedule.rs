//! Scheduled snapshots that run in the cluster: a CronJob whose pod runs `amlmigrate backup` and
//! `amlmigrate verify latest` (init containers) and then `amlmigrate prune` (the main container,
//! which starts only when both succeeded), under a ServiceAccount with least-privilege,
//! read-only RBAC.
//!
//! Every object carries `app.kubernetes.io/managed-by: amlmigrate` and
//! `amlmigrate.alauda.io/schedule: <name>` (cluster-scoped ones also
//! `amlmigrate.alauda.io/namespace: <ns>`), so `remove` deletes exactly what `install` made.
//! Credentials only ever come from Secret references, never inline values.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::kube::catalog::Catalog;
use crate::kube::{Cluster, Resource, name_of, namespace_of, object_name, str_at};
use crate::prune::Policy;

mod alerts;
mod cron;
mod rbac;
pub use alerts::prometheus_rule;
pub use cron::CronSchedule;
pub use rbac::{Rbac, ResolveFn, cluster_rules, rbac_rules};

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const SCHEDULE_LABEL: &str = "amlmigrate.alauda.io/schedule";
pub const NAMESPACE_LABEL: &str = "amlmigrate.alauda.io/namespace";
pub const REPO_ANNOTATION: &str = "amlmigrate.alauda.io/repository";

/// Where the backup container finds the signing key of `--sign-key-secret`.
const SIGN_KEY_DIR: &str = "/var/run/secrets/amlmigrate/sign";
const VERIFY_KEY_DIR: &str = "/var/run/secrets/amlmigrate/verify";
/// The group of the image's user (distroless `nonroot`, see the Dockerfile).
const IMAGE_GID: u32 = 65532;

/// What `schedule install` creates.
#[derive(Debug, Clone, Default)]
pub struct ScheduleSpec {
    pub name: String,
    pub namespace: String,
    pub repo: String,
    pub cron: String,
    pub image: String,
    /// The MySQL servers to back up, each a named source (the article's three: aml, kfp,
    /// mlflow), as `backup --mysql NAME=URL` takes them.
    pub mysql: Vec<MysqlSource>,
    /// Secret whose keys become the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, …).
    pub s3_secret: Option<String>,
    /// A claim to mount at a local repository path.
    pub repo_pvc: Option<String>,
    /// Secret whose key `key` holds the snapshot signing key (PKCS#8 PEM); mounted into the
    /// backup container only.
    pub sign_key_secret: Option<String>,
    pub kube: bool,
    pub namespaces: Vec<String>,
    pub encrypt_to: Vec<String>,
    /// The repository is plain on purpose: `encrypt_to` then covers only Secrets. Without it,
    /// each run's backup refuses a repository whose marker says it is not encrypted.
    pub unencrypted_repo: bool,
    pub policy: Policy,
    pub catalog: Catalog,
    /// A Prometheus Pushgateway every step pushes its metrics to.
    pub metrics_push: Option<String>,
}

/// One MySQL server of a schedule.
#[derive(Debug, Clone, Default)]
pub struct MysqlSource {
    /// `mysql` for the only, unnamed one.
    pub name: String,
    /// `mysql://user@host:port` without a password.
    pub url: String,
    /// Secret holding its password under key `password`; given to the backup container only.
    pub secret: Option<String>,
    /// Databases to back up (default: every non-system database).
    pub databases: Vec<String>,
}

impl MysqlSource {
    /// The variable `backup` reads this source's password from: the general one for the only,
    /// unnamed source, else the source's own (`AMLMIGRATE_MYSQL_PASSWORD_<NAME>`), so that no
    /// source's password is another's fallback.
    fn password_env(&self, only: bool) -> String {
        if only && self.name == crate::backup::DEFAULT_MYSQL_SOURCE {
            "AMLMIGRATE_MYSQL_PASSWORD".into()
        } else {
            format!(
                "AMLMIGRATE_MYSQL_PASSWORD_{}",
                self.name.to_ascii_uppercase().replace('-', "_")
            )
        }
    }
}

impl ScheduleSpec {
    /// The CronJob and ServiceAccount name.
    pub fn object_name(&self) -> String {
        format!("amlmigrate-{}", self.name)
    }

    /// ClusterRole / ClusterRoleBinding name: cluster-wide, so it names the namespace too.
    pub fn cluster_name(&self) -> String {
        format!("amlmigrate-{}-{}", self.namespace, self.name)
    }
}

/// Checks a schedule name: a DNS label short enough for the CronJob's Job names.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 30
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::input(format!(
            "schedule name {name:?} is not valid: use 1-30 lowercase letters, digits and '-'"
        )))
    }
}

/// Checks a cron expression as the CronJob controller reads it (see [`CronSchedule`]).
pub fn validate_cron(expr: &str) -> Result<()> {
    CronSchedule::parse(expr).map(|_| ())
}

/// The longest time between two runs of a cron expression, for the missing-backup alert.
pub fn cron_period(expr: &str) -> Result<std::time::Duration> {
    CronSchedule::parse(expr)?.period()
}

fn labels(spec: &ScheduleSpec, cluster_scoped: bool) -> Value {
    let mut l = json!({
        MANAGED_BY: "amlmigrate",
        SCHEDULE_LABEL: spec.name,
    });
    if cluster_scoped {
        l[NAMESPACE_LABEL] = json!(spec.namespace);
    }
    l
}

/// The objects `install` applies, in order: ServiceAccount, ClusterRole and ClusterRoleBinding
/// (when something is granted cluster-wide), a Role and RoleBinding per namespace, CronJob.
pub fn objects(spec: &ScheduleSpec, rbac: &Rbac) -> Result<Vec<Value>> {
    let name = spec.object_name();
    let cname = spec.cluster_name();
    let local_repo = !spec.repo.starts_with("s3://");
    if local_repo && spec.repo_pvc.is_none() {
        return Err(Error::input(format!(
            "repository {} is a local path, but a scheduled backup runs in a pod: use an \
             s3://BUCKET/PREFIX repository, or give --repo-pvc CLAIM to mount a volume at that path",
            spec.repo
        )));
    }
    if !spec.kube && spec.mysql.is_empty() {
        return Err(Error::input(
            "nothing to back up: give --mysql URL and/or --kube to schedule install",
        ));
    }
    let mut out = vec![json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": spec.namespace, "labels": labels(spec, false)},
    })];
    let subjects = json!([{"kind": "ServiceAccount", "name": name, "namespace": spec.namespace}]);
    let rbac_av = "rbac.authorization.k8s.io/v1";
    if !rbac.cluster.is_empty() {
        out.push(json!({
            "apiVersion": rbac_av,
            "kind": "ClusterRole",
            "metadata": {"name": cname, "labels": labels(spec, true)},
            "rules": rbac.cluster,
        }));
        out.push(json!({
            "apiVersion": rbac_av,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": cname, "labels": labels(spec, true)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cname},
            "subjects": subjects,
        }));
    }
    for (ns, rules) in &rbac.namespaces {
        let meta = json!({"name": cname, "namespace": ns, "labels": labels(spec, true)});
        out.push(json!({"apiVersion": rbac_av, "kind": "Role", "metadata": meta, "rules": rules}));
        out.push(json!({
            "apiVersion": rbac_av,
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": cname},
            "subjects": subjects,
        }));
    }

    out.push(cronjob(spec));
    Ok(out)
}

/// The CronJob: `backup` and `verify` in init containers, then `prune` (the image has no shell).
fn cronjob(spec: &ScheduleSpec) -> Value {
    let name = spec.object_name();
    // Logs as JSON lines, one event each, for the cluster's log collection.
    let mut backup: Vec<String> = vec![
        "backup".into(),
        "--repo".into(),
        spec.repo.clone(),
        "--progress".into(),
        "lines".into(),
        "-v".into(),
        "--log-format".into(),
        "json".into(),
        "--tag".into(),
        format!("schedule={}", spec.name),
    ];
    let only = spec.mysql.len() == 1;
    for m in &spec.mysql {
        // The only unnamed source is written as the user wrote it; named ones keep their names,
        // so each snapshot's sources are the same from run to run.
        let unnamed = only && m.name == crate::backup::DEFAULT_MYSQL_SOURCE;
        let qualify = |v: String| {
            if unnamed {
                v
            } else {
                format!("{}={v}", m.name)
            }
        };
        backup.extend(["--mysql".into(), qualify(m.url.clone())]);
        if !m.databases.is_empty() {
            backup.extend(["--databases".into(), qualify(m.databases.join(","))]);
        }
    }
    if spec.kube {
        backup.push("--kube".into());
        if !spec.namespaces.is_empty() {
            backup.extend(["--namespaces".into(), spec.namespaces.join(",")]);
        }
    }
    // The first run creates the repository (encrypted to the recipients); every run passes
    // the recipients, so a marker rewritten to "not encrypted" is refused, not obeyed.
    backup.push("--init".into());
    for r in &spec.encrypt_to {
        backup.extend(["--encrypt-to".into(), r.clone()]);
    }
    if spec.unencrypted_repo {
        backup.push("--unencrypted-repo".into());
    }
    if spec.sign_key_secret.is_some() {
        backup.extend(["--sign-key".into(), format!("{SIGN_KEY_DIR}/key")]);
    }
    // The snapshot just taken is read back before anything older is pruned.
    let mut verify: Vec<String> = [
        "verify",
        "--repo",
        &spec.repo,
        "latest",
        "--progress",
        "never",
        "-v",
        "--log-format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    if spec.sign_key_secret.is_some() {
        // Read back under the same trust the restore will use: the public half, from the
        // Secret's `key.pub`, so the verify container never sees the signing key.
        verify.extend(["--verify-key".into(), format!("{VERIFY_KEY_DIR}/key.pub")]);
    }
    let mut prune: Vec<String> = ["prune", "--repo", &spec.repo, "-v", "--log-format", "json"]
        .map(String::from)
        .to_vec();
    prune.extend(spec.policy.to_args());

    // The MySQL passwords go to the backup container only: verify and prune read the
    // repository, never a database.
    let passwords: Vec<Value> = spec
        .mysql
        .iter()
        .filter_map(|m| {
            let secret = m.secret.as_ref()?;
            Some(json!({
                "name": m.password_env(only),
                "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}},
            }))
        })
        .collect();
    let mut env = Vec::new();
    if let Some(url) = &spec.metrics_push {
        env.push(json!({"name": "AMLMIGRATE_METRICS_PUSH", "value": url}));
        env.push(json!({"name": "AMLMIGRATE_METRICS_SCHEDULE", "value": spec.name}));
    }
    let env_from: Vec<Value> = spec
        .s3_secret
        .iter()
        .map(|s| json!({"secretRef": {"name": s}}))
        .collect();
    let mounts: Vec<Value> = if spec.repo_pvc.is_some() {
        let path = spec.repo.strip_prefix("file://").unwrap_or(&spec.repo);
        vec![json!({"name": "repository", "mountPath": path})]
    } else {
        vec![]
    };
    let container = |cname: &str, args: &[String]| {
        let mut c = json!({
            "name": cname,
            "image": spec.image,
            "command": ["amlmigrate"],
            "args": args,
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]},
            },
            "resources": {
                "requests": {"cpu": "250m", "memory": "256Mi"},
                "limits": {"memory": "1Gi"},
            },
        });
        if !env.is_empty() {
            c["env"] = json!(env);
        }
        if !env_from.is_empty() {
            c["envFrom"] = json!(env_from);
        }
        if !mounts.is_empty() {
            c["volumeMounts"] = json!(mounts);
        }
        c
    };
    let mut backup_container = container("backup", &backup);
    if !passwords.is_empty() {
        let mut all = passwords;
        all.extend(env.iter().cloned());
        backup_container["env"] = json!(all);
    }
    let mut verify_container = container("verify", &verify);
    let mut volumes = Vec::new();
    if let Some(claim) = &spec.repo_pvc {
        volumes.push(json!({"name": "repository", "persistentVolumeClaim": {"claimName": claim}}));
    }
    let mut security = json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}});
    if let Some(secret) = &spec.sign_key_secret {
        // Secret files belong to root; group-readable under the pod's fsGroup is how a
        // non-root container reads them. Only the backup container sees the key.
        volumes.push(json!({"name": "sign-key", "secret": {
            "secretName": secret,
            "defaultMode": 0o440,
            "items": [{"key": "key", "path": "key"}],
        }}));
        let mount = json!({"name": "sign-key", "mountPath": SIGN_KEY_DIR, "readOnly": true});
        match backup_container["volumeMounts"].as_array_mut() {
            Some(m) => m.push(mount),
            None => backup_container["volumeMounts"] = json!([mount]),
        }
        volumes.push(json!({"name": "verify-key", "secret": {
            "secretName": secret,
            "defaultMode": 0o440,
            "items": [{"key": "key.pub", "path": "key.pub"}],
        }}));
        let mount = json!({"name": "verify-key", "mountPath": VERIFY_KEY_DIR, "readOnly": true});
        match verify_container["volumeMounts"].as_array_mut() {
            Some(m) => m.push(mount),
            None => verify_container["volumeMounts"] = json!([mount]),
        }
        security["fsGroup"] = json!(IMAGE_GID);
        security["fsGroupChangePolicy"] = json!("OnRootMismatch");
    }
    let mut pod = json!({
        "serviceAccountName": name,
        "restartPolicy": "Never",
        "securityContext": security,
        "initContainers": [backup_container, verify_container],
        "containers": [container("prune", &prune)],
    });
    if !volumes.is_empty() {
        pod["volumes"] = json!(volumes);
    }
    let cronjob = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": name,
            "namespace": spec.namespace,
            "labels": labels(spec, false),
            "annotations": {REPO_ANNOTATION: spec.repo},
        },
        "spec": {
            "schedule": spec.cron,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels(spec, false)},
                "spec": {
                    "backoffLimit": 1,
                    "activeDeadlineSeconds": 6 * 3600,
                    "template": {
                        "metadata": {"labels": labels(spec, false)},
                        "spec": pod,
                    },
                },
            },
        },
    });
    cronjob
}

/// The RBAC kinds `install` creates; found again by their labels, with the schedule's namespace.
const RBAC_KINDS: [&str; 4] = ["RoleBinding", "Role", "ClusterRoleBinding", "ClusterRole"];

/// Objects of `kinds` labelled as schedule `name` of `namespace` (cluster-scoped ones and those
/// in other namespaces carry the namespace label), anywhere in the cluster.
async fn labelled(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    kinds: &[&str],
) -> Result<Vec<(Resource, Option<String>, String)>> {
    let sel = format!("{},{NAMESPACE_LABEL}={namespace}", selector(Some(name)));
    let mut out = Vec::new();
    for kind in kinds {
        let r = cluster.need(kind, "rbac.authorization.k8s.io")?;
        for o in cluster.list(&r, None, Some(&sel), None).await? {
            let ns = namespace_of(&o).map(str::to_string);
            out.push((r.clone(), ns, name_of(&o).to_string()));
        }
    }
    Ok(out)
}

/// Applies the objects with server-side apply, then deletes the grants of an earlier install
/// that this one no longer makes (a namespace dropped, --encrypt-to removed). Returns `Kind
/// name` of each object applied and of each deleted.
pub async fn install(
    cluster: &Cluster,
    spec: &ScheduleSpec,
    objects: &[Value],
) -> Result<(Vec<String>, Vec<String>)> {
    let mut done = Vec::new();
    let mut keep = BTreeSet::new();
    for o in objects {
        let kind = str_at(o, "kind").unwrap_or_default();
        let av = str_at(o, "apiVersion").unwrap_or_default();
        let r = cluster.need(kind, crate::kube::group_of(av))?;
        let ns = str_at(o, "metadata.namespace");
        cluster.apply(&r, ns, name_of(o), o, true, false).await?;
        done.push(format!("{kind} {}", object_name(&r, ns, name_of(o))));
        keep.insert((
            kind.to_string(),
            ns.map(str::to_string),
            name_of(o).to_string(),
        ));
    }
    let mut deleted = Vec::new();
    for (r, ns, n) in labelled(cluster, &spec.namespace, &spec.name, &RBAC_KINDS).await? {
        if !keep.contains(&(r.ar.kind.clone(), ns.clone(), n.clone())) {
            cluster.delete(&r, ns.as_deref(), &n).await?;
            deleted.push(format!(
                "{} {}",
                r.ar.kind,
                object_name(&r, ns.as_deref(), &n)
            ));
        }
    }
    Ok((done, deleted))
}

#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub name: String,
    pub started: Option<String>,
    pub completed: Option<String>,
    /// Succeeded, Failed or Running.
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleStatus {
    pub name: String,
    pub namespace: String,
    pub cronjob: String,
    pub cron: String,
    pub suspended: bool,
    pub repository: Option<String>,
    pub last_schedule_time: Option<String>,
    pub last_successful_time: Option<String>,
    pub jobs: Vec<JobStatus>,
}

fn selector(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{MANAGED_BY}=amlmigrate,{SCHEDULE_LABEL}={n}"),
        None => format!("{MANAGED_BY}=amlmigrate,{SCHEDULE_LABEL}"),
    }
}

/// The schedules installed in `namespace` (or only `name`), with their Jobs, newest first.
pub async fn show(
    cluster: &Cluster,
    namespace: &str,
    name: Option<&str>,
) -> Result<Vec<ScheduleStatus>> {
    let cjr = cluster.need("CronJob", "batch")?;
    let jr = cluster.need("Job", "batch")?;
    let sel = selector(name);
    let mut out = Vec::new();
    for cj in cluster
        .list(&cjr, Some(namespace), Some(&sel), None)
        .await?
    {
        let sname = cj["metadata"]["labels"][SCHEDULE_LABEL]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let jsel = format!("{MANAGED_BY}=amlmigrate,{SCHEDULE_LABEL}={sname}");
        let mut jobs: Vec<JobStatus> = cluster
            .list(&jr, Some(namespace), Some(&jsel), None)
            .await?
            .iter()
            .map(|j| {
                let st = &j["status"];
                let cond = |t: &str| {
                    st["conditions"].as_array().is_some_and(|cs| {
                        cs.iter().any(|c| c["type"] == t && c["status"] == "True")
                    })
                };
                let status = if cond("Complete") || st["succeeded"].as_u64().unwrap_or(0) > 0 {
                    "Succeeded"
                } else if cond("Failed") {
                    "Failed"
                } else {
                    "Running"
                };
                JobStatus {
                    name: name_of(j).to_string(),
                    started: st["startTime"].as_str().map(str::to_string),
                    completed: st["completionTime"].as_str().map(str::to_string),
                    status: status.to_string(),
                }
            })
            .collect();
        jobs.sort_by(|a, b| (&b.started, &b.name).cmp(&(&a.started, &a.name)));
        out.push(ScheduleStatus {
            name: sname,
            namespace: namespace.to_string(),
            cronjob: name_of(&cj).to_string(),
            cron: cj["spec"]["schedule"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            suspended: cj["spec"]["suspend"].as_bool().unwrap_or(false),
            repository: cj["metadata"]["annotations"][REPO_ANNOTATION]
                .as_str()
                .map(str::to_string),
            last_schedule_time: cj["status"]["lastScheduleTime"]
                .as_str()
                .map(str::to_string),
            last_successful_time: cj["status"]["lastSuccessfulTime"]
                .as_str()
                .map(str::to_string),
            jobs,
        });
    }
    Ok(out)
}

/// Deletes what `install` created for schedule `name` in `namespace` (found by its labels),
/// and nothing else. Jobs of the CronJob go with it (background propagation).
pub async fn remove(cluster: &Cluster, namespace: &str, name: &str) -> Result<Vec<String>> {
    let sel = selector(Some(name));
    let mut found = Vec::new();
    let cj = cluster.need("CronJob", "batch")?;
    for o in cluster.list(&cj, Some(namespace), Some(&sel), None).await? {
        found.push((
            cj.clone(),
            Some(namespace.to_string()),
            name_of(&o).to_string(),
        ));
    }
    found.extend(labelled(cluster, namespace, name, &RBAC_KINDS).await?);
    let sa = cluster.need("ServiceAccount", "")?;
    for o in cluster.list(&sa, Some(namespace), Some(&sel), None).await? {
        found.push((
            sa.clone(),
            Some(namespace.to_string()),
            name_of(&o).to_string(),
        ));
    }
    let mut removed = Vec::new();
    for (r, ns, n) in found {
        cluster.delete(&r, ns.as_deref(), &n).await?;
        removed.push(format!(
            "{} {}",
            r.ar.kind,
            object_name(&r, ns.as_deref(), &n)
        ));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_key_secret_is_mounted_readable_into_the_backup_container_only() {
        let spec = ScheduleSpec {
            name: "nightly".into(),
            namespace: "aml-backup".into(),
            repo: "s3://b/p".into(),
            cron: "0 2 * * *".into(),
            image: "img".into(),
            sign_key_secret: Some("aml-sign".into()),
            ..Default::default()
        };
        let cj = cronjob(&spec);
        let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        let backup = &pod["initContainers"][0];
        let args: Vec<&str> = backup["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let at = args.iter().position(|a| *a == "--sign-key").unwrap();
        assert_eq!(args[at + 1], "/var/run/secrets/amlmigrate/sign/key");
        assert_eq!(
            backup["volumeMounts"],
            json!([{"name": "sign-key", "mountPath": "/var/run/secrets/amlmigrate/sign", "readOnly": true}])
        );
        assert!(pod["containers"][0].get("volumeMounts").is_none());
        // The verify container reads the snapshot back with the public half only.
        let verify = &pod["initContainers"][1];
        assert!(
            verify["args"]
                .as_array()
                .unwrap()
                .contains(&json!("/var/run/secrets/amlmigrate/verify/key.pub"))
        );
        assert_eq!(verify["volumeMounts"][0]["name"], "verify-key");
        assert_eq!(
            pod["volumes"][1]["secret"]["items"],
            json!([{"key": "key.pub", "path": "key.pub"}])
        );
        assert_eq!(pod["volumes"][0]["secret"]["secretName"], "aml-sign");
        assert_eq!(pod["volumes"][0]["secret"]["defaultMode"], 0o440);
        assert_eq!(pod["securityContext"]["fsGroup"], 65532);
        let plain = cronjob(&ScheduleSpec {
            sign_key_secret: None,
            ..spec
        });
        let pod = &plain["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert!(pod.get("volumes").is_none());
        assert!(pod["securityContext"].get("fsGroup").is_none());
    }
}
