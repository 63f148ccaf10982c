//! `amlmigrate schedule`

use clap::{Args, Subcommand};
use serde_json::json;

use amlmigrate::error::Error;
use amlmigrate::kube::catalog::Catalog;
use amlmigrate::kube::{Cluster, Role};
use amlmigrate::mysql::MysqlUrl;
use amlmigrate::repo::Repository;
use amlmigrate::schedule::{self, ScheduleSpec};

use super::prune::PolicyArgs;
use super::{GlobalArgs, KubeArgs, print_json};

/// Scheduled snapshots that run inside the cluster as a CronJob.
///
/// `install` creates, in --namespace: a ServiceAccount with read-only access (get/list) to
/// exactly what `backup --kube` reads: the image-builder ConfigMap and Secret only by name
/// (Secrets only with --encrypt-to); with --namespaces, namespaced kinds through a Role and
/// RoleBinding in each of those namespaces (and kubeflow), otherwise through the ClusterRole
/// (user namespaces are then found at each run); and a CronJob (concurrencyPolicy Forbid)
/// whose pod runs `amlmigrate backup` and `amlmigrate verify latest` as init containers and
/// then `amlmigrate prune` with the --keep-* rules, only when both succeeded. Each step logs
/// JSON lines; with --metrics-push each pushes its metrics. Grants an earlier install made that this
/// one does not are deleted.
/// Credentials come only from Secrets: the MySQL password from key `password` of
/// --mysql-secret, the S3 settings from every key of --s3-secret (AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY, and optionally AWS_ENDPOINT_URL, AWS_REGION).
#[derive(Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    command: ScheduleCommand,
}

#[derive(Subcommand)]
enum ScheduleCommand {
    Install(Box<InstallArgs>),
    Show(ShowArgs),
    Remove(RemoveArgs),
}

#[derive(Args)]
struct Target {
    /// Namespace of the CronJob and its ServiceAccount.
    #[arg(long, short = 'n', value_name = "NS")]
    namespace: String,
    /// Schedule name (several schedules can live in one namespace).
    #[arg(long, default_value = "pre-upgrade", value_name = "NAME")]
    name: String,
    #[command(flatten)]
    kube: KubeArgs,
}

/// Installs (or updates) a scheduled backup + prune in the cluster (server-side apply).
///
/// What it writes into the cluster comes from its command line alone: it reads no
/// AMLMIGRATE_* variable, so no setting of this shell (a port-forwarded MySQL URL, a local
/// Pushgateway) ends up in the CronJob unseen.
#[derive(Args)]
#[command(after_long_help = r#"Examples:
  kubectl -n aml-backup create secret generic aml-s3 \
      --from-literal=AWS_ACCESS_KEY_ID=… \
      --from-literal=AWS_SECRET_ACCESS_KEY=… \
      --from-literal=AWS_ENDPOINT_URL=http://minio:9000
  kubectl -n aml-backup create secret generic aml-mysql \
      --from-literal=password=…
  amlmigrate schedule install -n aml-backup --repo s3://aml-backups/prod \
      --cron "0 2 * * *" --mysql mysql://root@mysql.kubeflow:3306 \
      --mysql-secret aml-mysql --s3-secret aml-s3 --kube \
      --keep-daily 7 --keep-weekly 4 \
      --image registry.example.com/amlmigrate:0.1.0
  amlmigrate schedule install -n aml-backup --repo s3://aml-backups/prod \
      --cron @daily --mysql mysql://root@mysql.kubeflow:3306 \
      --mysql-secret aml-mysql --print | kubectl apply -f -"#)]
struct InstallArgs {
    #[command(flatten)]
    target: Target,
    /// Repository the pod writes to: s3://BUCKET/PREFIX, or a path on --repo-pvc.
    #[arg(long, value_name = "URL")]
    repo: String,
    /// When to run, standard 5-field cron (minute hour day-of-month month day-of-week), UTC
    /// unless the cluster sets another zone, or @daily, @hourly ….
    #[arg(long, value_name = "EXPR")]
    cron: String,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Container image with amlmigrate on its PATH (see the Dockerfile).
    #[arg(long, value_name = "IMAGE", default_value = concat!("amlmigrate:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// MySQL server to back up, without a password: [NAME=]mysql://user@host:3306. Repeat it
    /// with NAME= for several servers (e.g. aml=…, kfp=…, mlflow=…), as `backup --mysql` takes
    /// them.
    #[arg(long, value_name = "[NAME=]URL")]
    mysql: Vec<String>,
    /// Secret (in --namespace) whose key `password` holds a MySQL password: SECRET for the only
    /// source, NAME=SECRET for a named one (repeatable). Only the backup container gets it.
    #[arg(long, value_name = "[NAME=]SECRET")]
    mysql_secret: Vec<String>,
    /// Secret (in --namespace) whose keys become the pod's environment: AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, optionally AWS_SESSION_TOKEN, AWS_ENDPOINT_URL, AWS_REGION.
    #[arg(long, value_name = "SECRET")]
    s3_secret: Option<String>,
    /// For a local-path --repo: the PersistentVolumeClaim mounted at that path.
    #[arg(long, value_name = "CLAIM")]
    repo_pvc: Option<String>,
    /// Secret (in --namespace) whose key `key` holds the signing key of `amlmigrate key
    /// generate`: every snapshot the job takes is signed (mounted into the backup container
    /// only). `kubectl -n NS create secret generic aml-sign --from-file=key=aml-backup.key`
    #[arg(long, value_name = "SECRET")]
    sign_key_secret: Option<String>,
    /// Also back up the Kubernetes objects (in-cluster, with the ServiceAccount's read access).
    #[arg(long)]
    kube: bool,
    /// User namespaces for --kube (default: found from Profiles at each run). Given, the job's
    /// permissions on namespaced kinds are Roles in these namespaces only.
    #[arg(long, value_delimiter = ',', value_name = "NS,...", requires = "kube")]
    namespaces: Vec<String>,
    /// Databases to back up, comma-separated (default: every non-system database): DB,... for
    /// the only source, NAME=DB,... for a named one (repeatable).
    #[arg(long, value_name = "[NAME=]DB,...")]
    databases: Vec<String>,
    /// age recipients (public keys) to encrypt Secrets to; grants the job read access to Secrets.
    #[arg(long, value_name = "AGE_RECIPIENT", value_delimiter = ',')]
    encrypt_to: Vec<String>,
    /// The repository is not encrypted, on purpose: --encrypt-to then encrypts only the
    /// Secrets. Without it, the job's backups refuse a repository that is not encrypted to
    /// --encrypt-to.
    #[arg(long, requires = "encrypt_to")]
    unencrypted_repo: bool,
    /// Print the objects as multi-document YAML instead of applying them.
    #[arg(long)]
    print: bool,
    /// Every step of a run pushes its metrics to this Prometheus Pushgateway
    /// (http://HOST:9091), labelled with the schedule's name.
    #[arg(long, value_name = "URL")]
    metrics_push: Option<String>,
    /// With --print: also print a PrometheusRule alerting when no backup succeeded for the
    /// schedule's longest gap between runs plus --alert-margin, and when a backup or verify
    /// failed (needs --metrics-push, and the Prometheus Operator to apply it).
    #[arg(long, requires_all = ["print", "metrics_push"])]
    prometheus_rule: bool,
    /// How late a backup may be before AmlmigrateBackupMissing fires.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = amlmigrate::span::parse)]
    alert_margin: std::time::Duration,
}

/// Shows the schedules of a namespace: cron, last run, their Jobs, and the newest snapshot of
/// the repository when it is reachable from here.
#[derive(Args)]
struct ShowArgs {
    /// Namespace of the CronJob.
    #[arg(long, short = 'n', value_name = "NS")]
    namespace: String,
    /// Only this schedule (default: all of the namespace).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    #[command(flatten)]
    kube: KubeArgs,
}

/// Removes exactly the objects `install` created (found by their labels), and nothing else.
#[derive(Args)]
struct RemoveArgs {
    #[command(flatten)]
    target: Target,
}

pub async fn run(args: ScheduleArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        ScheduleCommand::Install(a) => install(*a, g).await,
        ScheduleCommand::Show(a) => show(a, g).await,
        ScheduleCommand::Remove(a) => remove(a, g).await,
    }
}

fn spec(a: &InstallArgs) -> anyhow::Result<ScheduleSpec> {
    schedule::validate_name(&a.target.name)?;
    schedule::validate_cron(&a.cron)?;
    amlmigrate::repo::Location::parse(&a.repo)?;
    let policy = a.policy.policy();
    if policy.is_empty() {
        return Err(Error::input(
            "schedule install: give at least one retention rule (--keep-last N, --keep-daily N, \
             --keep-weekly N, --keep-within SPAN) so the repository does not grow without bound",
        )
        .into());
    }
    let mysql = mysql_sources(a)?;
    amlmigrate::kube::secrets::Recipients::parse(&a.encrypt_to)?;
    if let Some(m) = &a.metrics_push {
        let ok = url::Url::parse(m)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.password().is_none());
        if !ok {
            return Err(Error::input(format!(
                "--metrics-push: expected the Pushgateway as http://HOST:9091 (or https://), \
                 without a password, which would be stored in the CronJob in clear; got {:?}",
                amlmigrate::secret::redact_url(m)
            ))
            .into());
        }
    }
    Ok(ScheduleSpec {
        name: a.target.name.clone(),
        namespace: a.target.namespace.clone(),
        repo: a.repo.clone(),
        cron: a.cron.trim().to_string(),
        image: a.image.clone(),
        mysql,
        s3_secret: a.s3_secret.clone(),
        repo_pvc: a.repo_pvc.clone(),
        sign_key_secret: a.sign_key_secret.clone(),
        kube: a.kube,
        namespaces: a.namespaces.clone(),
        encrypt_to: a.encrypt_to.clone(),
        unencrypted_repo: a.unencrypted_repo,
        policy,
        catalog: Catalog::default(),
        metrics_push: a.metrics_push.clone(),
    })
}

/// The MySQL sources of `--mysql`, each with its Secret and databases; a URL holding a password
/// is refused (it would be stored in the CronJob in clear), as is a flag naming no source.
fn mysql_sources(a: &InstallArgs) -> anyhow::Result<Vec<schedule::MysqlSource>> {
    use super::backup::{named_sources, owner_of};
    let named = named_sources(&a.mysql)?;
    let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let orphan = [
        ("--mysql-secret", &a.mysql_secret),
        ("--databases", &a.databases),
    ]
    .into_iter()
    .find_map(|(flag, v)| (!v.is_empty()).then_some(flag));
    if let (true, Some(flag)) = (names.is_empty(), orphan) {
        return Err(Error::input(format!("{flag} given without --mysql")).into());
    }
    let mut out = Vec::new();
    for (name, raw) in named {
        let url = MysqlUrl::parse(&raw)?;
        if url.password.is_some() {
            return Err(Error::input(format!(
                "--mysql {}: the URL holds a password, which would be stored in the CronJob in \
                 clear; remove it and put it in a Secret's key `password`, named with --mysql-secret",
                url.redacted()
            ))
            .into());
        }
        out.push(schedule::MysqlSource {
            name,
            url: raw,
            ..Default::default()
        });
    }
    for v in &a.mysql_secret {
        let (name, secret) = owner_of(v, &names, "--mysql-secret")?;
        let source = out
            .iter_mut()
            .find(|m| m.name == name)
            .expect("an owner is a source");
        if source.secret.replace(secret.to_string()).is_some() {
            return Err(
                Error::input(format!("--mysql-secret: two Secrets for source {name}")).into(),
            );
        }
    }
    for v in &a.databases {
        let (name, list) = owner_of(v, &names, "--databases")?;
        let source = out
            .iter_mut()
            .find(|m| m.name == name)
            .expect("an owner is a source");
        source
            .databases
            .extend(list.split(',').filter(|d| !d.is_empty()).map(String::from));
    }
    Ok(out)
}

async fn install(a: InstallArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let spec = spec(&a)?;
    if a.print {
        let objects = schedule::objects(&spec, &schedule::rbac_rules(&spec, &|_, _| None))?;
        let mut objects = objects;
        if a.prometheus_rule {
            let period = schedule::cron_period(&spec.cron)?;
            objects.push(schedule::prometheus_rule(&spec, period, a.alert_margin));
        }
        for o in &objects {
            let yaml = serde_saphyr::to_string(o)
                .map_err(|e| Error::other(format!("writing YAML: {e}")))?;
            print!("---\n{yaml}");
        }
        return Ok(());
    }
    let cluster = Cluster::connect(&a.target.kube.options(), Role::Workload).await?;
    let objects = schedule::objects(&spec, &schedule::cluster_rules(&cluster, &spec))?;
    let (applied, deleted) = schedule::install(&cluster, &spec, &objects).await?;
    if g.json {
        print_json(
            &json!({ "ok": true, "schedule": spec.name, "namespace": spec.namespace,
            "cron": spec.cron, "applied": applied, "deleted": deleted }),
        );
    } else if !g.quiet {
        for o in &applied {
            println!("applied {o}");
        }
        for o in &deleted {
            println!("deleted {o} (no longer needed)");
        }
        println!(
            "schedule {} installed in {}: \"{}\" backs up into {} then prunes ({})",
            spec.name,
            spec.namespace,
            spec.cron,
            spec.repo,
            spec.policy.to_args().join(" ")
        );
    }
    Ok(())
}

async fn show(a: ShowArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let cluster = Cluster::connect(&a.kube.options(), Role::Workload).await?;
    let list = schedule::show(&cluster, &a.namespace, a.name.as_deref()).await?;
    let mut out = Vec::new();
    for s in &list {
        // The newest snapshot, when the repository is reachable from here.
        let newest = match &s.repository {
            Some(r) => match Repository::open(r).await {
                Ok(repo) => match repo.snapshot_ids().await {
                    Ok(ids) => json!({ "reachable": true, "newest": ids.last() }),
                    Err(e) => json!({ "reachable": false, "error": e.to_string() }),
                },
                Err(e) => json!({ "reachable": false, "error": e.to_string() }),
            },
            None => json!(null),
        };
        out.push((s, newest));
    }
    if g.json {
        let items: Vec<_> = out
            .iter()
            .map(|(s, n)| {
                let mut v = serde_json::to_value(s).expect("serializes");
                v["snapshot"] = n.clone();
                v
            })
            .collect();
        print_json(&json!({ "ok": true, "schedules": items }));
        return Ok(());
    }
    if out.is_empty() {
        println!("no amlmigrate schedule in namespace {}", a.namespace);
        return Ok(());
    }
    for (s, n) in out {
        println!(
            "schedule {} (CronJob {}/{}): \"{}\"{}",
            s.name,
            s.namespace,
            s.cronjob,
            s.cron,
            if s.suspended { " (suspended)" } else { "" }
        );
        println!(
            "  repository:      {}",
            s.repository.as_deref().unwrap_or("?")
        );
        println!(
            "  last scheduled:  {}",
            s.last_schedule_time.as_deref().unwrap_or("never")
        );
        println!(
            "  last successful: {}",
            s.last_successful_time.as_deref().unwrap_or("never")
        );
        match (n["reachable"].as_bool(), n["newest"].as_str()) {
            (Some(true), Some(id)) => println!("  newest snapshot: {id}"),
            (Some(true), None) => println!("  newest snapshot: none yet"),
            _ => println!(
                "  newest snapshot: repository not reachable from here ({})",
                n["error"].as_str().unwrap_or("no repository annotation")
            ),
        }
        if s.jobs.is_empty() {
            println!("  jobs:            none yet");
        }
        for j in &s.jobs {
            println!(
                "  job {:<40} {:<10} started {} finished {}",
                j.name,
                j.status,
                j.started.as_deref().unwrap_or("-"),
                j.completed.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}

async fn remove(a: RemoveArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    schedule::validate_name(&a.target.name)?;
    let cluster = Cluster::connect(&a.target.kube.options(), Role::Workload).await?;
    let removed = schedule::remove(&cluster, &a.target.namespace, &a.target.name).await?;
    if removed.is_empty() {
        return Err(Error::input(format!(
            "no schedule {} in namespace {}: `amlmigrate schedule show -n {}` lists them",
            a.target.name, a.target.namespace, a.target.namespace
        ))
        .into());
    }
    if g.json {
        print_json(&json!({ "ok": true, "removed": removed }));
    } else if !g.quiet {
        for o in &removed {
            println!("deleted {o}");
        }
    }
    Ok(())
}
