//! `amlmigrate restore`

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use amlmigrate::kube::catalog::Catalog;
use amlmigrate::kube::objects::{HIDDEN, NamespaceMap, Op};
use amlmigrate::kube::restore::{KubeRestoreOptions, KubeRestoreReport, OnConflict, restore_kube};
use amlmigrate::mysql::restore::{RestoreOptions, restore};
use amlmigrate::repo::Repository;

use amlmigrate::text::Safe;

use super::{
    GlobalArgs, JsonPrinted, KubeArgs, MysqlArgs, RepoArg, parse_pair, print_json, progress_for,
    thousands,
};

/// Restores a snapshot: its MySQL databases into a MySQL or MariaDB server, exactly, and (with
/// --only kubernetes) its Kubernetes objects into a cluster.
///
/// MySQL:
/// Before writing anything it checks that the snapshot holds the databases, that the target
/// accepts LOAD DATA LOCAL (local_infile=ON), that every collation exists on the target (a
/// MySQL 8 collation the target lacks, such as utf8mb4_0900_ai_ci on MariaDB or 5.7, is mapped
/// to the nearest one and the output says so), and that no table it would fill holds rows.
/// Each table is loaded in one transaction that commits only when its row count matches the
/// snapshot and the server raised no warning. Triggers and events are created after the data.
///
/// Kubernetes (--only kubernetes): first every object is checked against the catalog in use
/// (--kube-catalog, default the built-in one): its kind is in the catalog, its YAML is what
/// objects.json lists, it lives in one of the snapshot's user namespaces (or a namespace the
/// catalog names), Secrets are encrypted, PersistentVolumes are bound to a restored claim. One
/// that is not stops the restore before any write (exit 3 when the snapshot contradicts
/// itself, 4 otherwise). Then objects are created with server-side apply (field manager
/// amlmigrate) in dependency order: namespaces and Profiles, PVs and PVCs, ConfigMaps and
/// Secrets, RBAC, AuthorizationPolicies, then custom resources. An object that exists is left as
/// it is (--on-conflict skip) or made equal to the snapshot (--on-conflict update: fields
/// changed since are put back, fields added since are removed; status, server metadata and
/// controller-owned fields such as a bound claim's volumeName stay), so a re-run never
/// duplicates anything. With --namespace-map, existing cluster-scoped objects are never
/// changed. A PVC whose Retain volume was Released is bound to it again. Records (training
/// jobs, plugin ModuleInfos) are restored only when named with --kinds. --dry-run asks the
/// server to dry-run every write and prints each field it would change or remove (values of
/// Secrets and credentials show as (hidden)). One object failing does not stop the rest; each
/// failure is listed and the exit code is 1.
///
/// SNAPSHOT is an id, a unique id prefix, or `latest`.
#[derive(Args)]
#[command(after_long_help = r#"Examples:
  amlmigrate restore --repo /backups/aml latest --mysql mysql://root@db:3306
  amlmigrate restore --repo /backups/aml 20261128T0200 --mysql mysql://root@db \
      --databases aml --rename aml=aml_check
  amlmigrate restore --repo /backups/aml latest --mysql mysql://root@db:3306 \
      --replace
  amlmigrate restore --repo /backups/aml latest --only kubernetes --dry-run
  amlmigrate restore --repo /backups/aml latest --only kubernetes \
      --namespace-map team-a=team-a-restored --identity key.txt"#)]
pub struct RestoreArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    trust: super::key::TrustArgs,
    /// Snapshot to restore: an id, a unique id prefix, or `latest`.
    snapshot: String,
    /// What to restore: mysql, kubernetes, or both (comma-separated). Default: mysql.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WHAT,...")]
    only: Vec<What>,
    #[command(flatten)]
    mysql: MysqlArgs,
    #[command(flatten)]
    kube: KubeArgs,
    /// Kubernetes: restore namespace SRC as DST (repeatable); Profiles, RoleBinding subjects,
    /// AuthorizationPolicy principals and PV claim references follow.
    #[arg(long = "namespace-map", value_name = "SRC=DST", value_parser = parse_pair)]
    namespace_map: Vec<(String, String)>,
    /// Kubernetes: what to do with an object that already exists.
    #[arg(long, value_enum, default_value_t = Conflict::Skip)]
    on_conflict: Conflict,
    /// Kubernetes: the catalog that says which kinds may be restored and where (the TOML file
    /// the backup used with --kube-catalog). Default: the built-in catalog.
    #[arg(long, value_name = "FILE")]
    kube_catalog: Option<std::path::PathBuf>,
    /// Kubernetes: only these kinds (comma-separated, e.g. Notebook,PersistentVolumeClaim).
    #[arg(long, value_delimiter = ',', value_name = "KIND,...")]
    kinds: Vec<String>,
    /// Kubernetes: only objects of these snapshot namespaces (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NS,...")]
    namespaces: Vec<String>,
    /// Kubernetes: CSI drivers whose volumes a restore may create when the cluster lacks them
    /// (comma-separated, e.g. topolvm.io). Default: none, so only volumes the cluster still has
    /// are restored.
    #[arg(
        long = "volume-driver",
        value_delimiter = ',',
        value_name = "DRIVER,..."
    )]
    volume_drivers: Vec<String>,
    /// Kubernetes: storage classes a created CSI volume may name (comma-separated).
    #[arg(long = "volume-class", value_delimiter = ',', value_name = "CLASS,...")]
    volume_classes: Vec<String>,
    /// Kubernetes: volume sources a restore refuses otherwise: hostPath, local, csi-secrets
    /// (CSI Secret references) or another PersistentVolume source (nfs). A snapshot's hostPath
    /// volume gives whoever mounts its claim the node's files: name it only for a snapshot you
    /// trust.
    #[arg(
        long = "allow-volume-source",
        value_delimiter = ',',
        value_name = "SOURCE,..."
    )]
    allow_volume_sources: Vec<String>,
    /// Age identity file: decrypts the snapshot's Secrets, and an encrypted repository.
    #[arg(long, env = "AMLMIGRATE_IDENTITY", value_name = "FILE")]
    identity: Option<std::path::PathBuf>,
    /// Databases of the snapshot to restore, comma-separated. Default: all of them (of --source).
    #[arg(long, value_delimiter = ',', value_name = "DB,...")]
    databases: Vec<String>,
    /// Restore the databases of this MySQL source of the snapshot (`amlmigrate show` lists its
    /// sources, e.g. aml, kfp, mlflow; a snapshot of an older version has one, "mysql").
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// Restore database SRC under the name DST (repeatable).
    #[arg(long = "rename", value_name = "SRC=DST", value_parser = parse_pair)]
    renames: Vec<(String, String)>,
    /// Replace the rows of tables that already hold rows (atomically per transactional table)
    /// instead of refusing.
    #[arg(long)]
    replace: bool,
    /// Run every check (snapshot, target, collations, non-empty tables; for Kubernetes a server
    /// dry run of every write) and print what would be restored, without writing anything.
    #[arg(long)]
    dry_run: bool,
    /// MySQL: load this many tables at once, each on its own connection and still in its own
    /// transaction [default: two per core, at most 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: Option<u16>,
    /// MySQL: also create the triggers, routines, events and SQL SECURITY DEFINER views of a
    /// snapshot no key given with --verify-key signed. They run with their definer's
    /// privileges (often root): pass this only for a snapshot whose bucket you trust.
    #[arg(long)]
    trust_unsigned_code: bool,
    /// MySQL: define every restored trigger, routine, event and view as USER@HOST instead of
    /// the definer the snapshot names.
    #[arg(long, value_name = "USER@HOST", value_parser = parse_definer)]
    definer: Option<(String, String)>,
}

fn parse_definer(s: &str) -> Result<(String, String), String> {
    match s.rsplit_once('@') {
        Some((u, h)) if !u.is_empty() && !h.is_empty() => Ok((u.to_string(), h.to_string())),
        _ => Err(format!("expected USER@HOST, got {s:?}")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    Mysql,
    Kubernetes,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Conflict {
    /// Leave it as it is (reported as unchanged, or skipped with what update would change).
    Skip,
    /// Make it equal to the snapshot: change what differs, remove what was added since.
    Update,
}

pub async fn run(
    args: RestoreArgs,
    g: &GlobalArgs,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let repo = args
        .trust
        .open_with(&args.repo.repo, args.identity.as_deref())
        .await?;
    let lock_cancel = cancel.clone();
    super::reading(
        &repo,
        "restore",
        &lock_cancel,
        restore_from(&args, g, &repo, cancel),
    )
    .await
}

async fn restore_from(
    args: &RestoreArgs,
    g: &GlobalArgs,
    repo: &amlmigrate::repo::Repository,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let id = repo.resolve(&args.snapshot).await?;
    let manifest = repo.manifest(&id).await?;
    let only = if args.only.is_empty() {
        if manifest.mysql.is_empty() {
            anyhow::bail!(amlmigrate::Error::input(format!(
                "snapshot {id} holds no MySQL databases{}; say what to restore with --only",
                if manifest.kubernetes.is_some() {
                    " but a Kubernetes part (restore it with --only kubernetes)"
                } else {
                    ""
                }
            )));
        }
        if manifest.kubernetes.is_some() && !g.quiet && !g.json {
            eprintln!(
                "note: snapshot {id} also holds Kubernetes objects; they are restored only with --only kubernetes"
            );
        }
        vec![What::Mysql]
    } else {
        args.only.clone()
    };
    let mut out = serde_json::json!({ "ok": true, "snapshot": id });
    if only.contains(&What::Mysql) {
        run_mysql(args, g, repo, &id, cancel.clone(), &mut out).await?;
    }
    if only.contains(&What::Kubernetes) {
        run_kube(args, g, repo, &id, cancel, out).await
    } else {
        if g.json {
            print_json(&out);
        }
        Ok(())
    }
}

async fn run_kube(
    args: &RestoreArgs,
    g: &GlobalArgs,
    repo: &Repository,
    id: &str,
    cancel: CancellationToken,
    mut out: serde_json::Value,
) -> anyhow::Result<()> {
    let catalog = match &args.kube_catalog {
        Some(p) => Catalog::load(p)?,
        None => Catalog::default(),
    };
    let opts = KubeRestoreOptions {
        access: args.kube.options(),
        catalog,
        namespace_map: NamespaceMap(args.namespace_map.iter().cloned().collect()),
        dry_run: args.dry_run,
        on_conflict: match args.on_conflict {
            Conflict::Skip => OnConflict::Skip,
            Conflict::Update => OnConflict::Update,
        },
        kinds: args.kinds.clone(),
        namespaces: args.namespaces.clone(),
        cluster: None,
        identity: args.identity.clone(),
        volumes: amlmigrate::kube::volumes::VolumePolicy {
            drivers: args.volume_drivers.clone(),
            classes: args.volume_classes.clone(),
            allow_sources: args.allow_volume_sources.clone(),
        },
    };
    let ui = progress_for(g);
    let progress: amlmigrate::progress::ProgressRef = ui.clone();
    let result = restore_kube(repo, id, &opts, &progress, &cancel).await;
    ui.finish();
    let report =
        result.with_context(|| format!("restore of the Kubernetes objects of snapshot {id}"))?;
    let failed = report.failed().len();
    let refused = report.refused().len();
    if g.json {
        out["kubernetes"] = serde_json::to_value(&report).expect("report serializes");
        if failed + refused > 0 {
            out["ok"] = serde_json::json!(false);
        }
        print_json(&out);
    } else if !g.quiet {
        print_kube_report(&report);
    }
    if refused > 0 {
        let msg = format!(
            "{refused} object(s) of snapshot {id} may not be restored (listed as refused); a \
             restore without --dry-run would write nothing"
        );
        let e = if report.damaged {
            amlmigrate::Error::damaged("kubernetes", "kubernetes/objects.json", msg)
        } else {
            amlmigrate::Error::Refused(msg)
        };
        return Err(if g.json {
            JsonPrinted(e).into()
        } else {
            e.into()
        });
    }
    if failed > 0 {
        let names: Vec<String> = report
            .failed()
            .iter()
            .map(|o| match &o.namespace {
                Some(ns) => format!("{} {ns}/{}", o.kind, o.name),
                None => format!("{} {}", o.kind, o.name),
            })
            .collect();
        let e = amlmigrate::Error::other(format!(
            "{failed} Kubernetes object(s) could not be restored ({}); the other {} were \
             handled. Fix the cause shown for each and re-run: objects that exist are left as they are",
            names.join(", "),
            report.objects.len() - failed
        ));
        return Err(if g.json {
            JsonPrinted(e).into()
        } else {
            e.into()
        });
    }
    Ok(())
}

fn print_kube_report(report: &KubeRestoreReport) {
    for o in &report.objects {
        // Names, paths and values come from the snapshot and the cluster: each shown escaped.
        let name = match &o.namespace {
            Some(ns) => format!("{}/{}", Safe(ns), Safe(&o.name)),
            None => Safe(&o.name).to_string(),
        };
        println!("{:<13} {} {name}", o.action, Safe(&o.kind));
        for c in &o.changes {
            let show = |v: &Option<serde_json::Value>| match v {
                None if c.op == Op::Remove => "(removed)".to_string(),
                None => "(absent)".to_string(),
                Some(v) if c.hidden => HIDDEN.to_string(),
                Some(v) => {
                    let s = v.to_string();
                    if s.len() > 80 {
                        format!(
                            "{}…",
                            &s[..s.char_indices().nth(79).map(|(i, _)| i).unwrap_or(s.len())]
                        )
                    } else {
                        s
                    }
                }
            };
            println!(
                "                {}: {} → {}",
                Safe(&c.path),
                Safe(show(&c.old)),
                Safe(show(&c.new))
            );
        }
        if let Some(n) = &o.note {
            println!("                note: {}", Safe(n));
        }
        if let Some(e) = &o.error {
            println!("                error: {}", Safe(e));
        }
    }
    let mut counts = Vec::new();
    for a in [
        "created",
        "updated",
        "unchanged",
        "skipped",
        "would create",
        "would update",
        "failed",
        "refused",
    ] {
        let n = report.count(a);
        if n > 0 {
            counts.push(format!("{n} {a}"));
        }
    }
    println!(
        "kubernetes{}: {}",
        if report.dry_run {
            " (dry run, nothing written)"
        } else {
            ""
        },
        if counts.is_empty() {
            "nothing to restore".to_string()
        } else {
            counts.join(", ")
        }
    );
}

async fn run_mysql(
    args: &RestoreArgs,
    g: &GlobalArgs,
    repo: &Repository,
    id: &str,
    cancel: CancellationToken,
    out: &mut serde_json::Value,
) -> anyhow::Result<()> {
    let url = args.mysql.url()?;
    let databases = match &args.source {
        None => (!args.databases.is_empty()).then(|| args.databases.clone()),
        Some(source) => {
            let manifest = repo.manifest(id).await?;
            let of_source: Vec<String> = amlmigrate::backup::databases_of(&manifest, source)?
                .iter()
                .map(|d| d.name.clone())
                .collect();
            if let Some(other) = args.databases.iter().find(|d| !of_source.contains(d)) {
                anyhow::bail!(amlmigrate::Error::input(format!(
                    "database {other} is not in MySQL source {source} of snapshot {id} (it holds {})",
                    of_source.join(", ")
                )));
            }
            Some(if args.databases.is_empty() {
                of_source
            } else {
                args.databases.clone()
            })
        }
    };
    let opts = RestoreOptions {
        mysql: url,
        databases,
        renames: args.renames.clone(),
        replace: args.replace,
        dry_run: args.dry_run,
        jobs: args
            .jobs
            .map_or_else(amlmigrate::mysql::restore::default_jobs, usize::from),
        trust_unsigned_code: args.trust_unsigned_code,
        definer: args.definer.clone(),
    };
    let ui = progress_for(g);
    let result = restore(repo, id, &opts, ui.clone(), cancel).await;
    ui.finish();
    let report = result.with_context(|| format!("restore of snapshot {id} into {}", opts.mysql))?;
    if g.json {
        out["restore"] = serde_json::to_value(&report).expect("report serializes");
    } else if !g.quiet {
        let verb = if report.dry_run {
            "would restore"
        } else {
            "restored"
        };
        for d in &report.databases {
            let arrow = if d.source == d.target {
                Safe(&d.target).to_string()
            } else {
                format!("{} -> {}", Safe(&d.source), Safe(&d.target))
            };
            println!(
                "{verb} {arrow}: {} tables, {} rows",
                d.tables.len(),
                thousands(d.rows)
            );
        }
        for (from, to) in &report.collation_map {
            let (from, to) = (Safe(from), Safe(to));
            println!("collation {from} mapped to {to} (the target has no {from})");
        }
        for t in &report.replaced {
            let done = if report.dry_run {
                "would be replaced"
            } else {
                "replaced"
            };
            println!("rows of {} {done} (--replace)", Safe(t));
        }
        if !report.not_restored.is_empty() {
            let not = if report.dry_run {
                "would not be"
            } else {
                "not"
            };
            for o in &report.not_restored {
                println!(
                    "{} {not} restored: it runs with its definer's privileges and no trusted key signed the snapshot",
                    Safe(o.to_string())
                );
            }
            let mut words: Vec<String> = ["amlmigrate", "restore", "--repo", &args.repo.repo]
                .into_iter()
                .chain([report.snapshot.as_str(), "--mysql", &report.target])
                .map(str::to_string)
                .collect();
            for d in &report.databases {
                words.extend(["--databases".to_string(), d.source.clone()]);
                if d.source != d.target {
                    words.extend(["--rename".to_string(), format!("{}={}", d.source, d.target)]);
                }
            }
            words.extend(["--replace", "--trust-unsigned-code"].map(str::to_string));
            println!(
                "to restore them, sign backups (--sign-key) and restore with --verify-key, or if you trust this snapshot run: {}",
                Safe(shell_command(&words))
            );
        }
        if report.dry_run {
            println!(
                "dry run: every check passed against {} ({}); nothing was written",
                report.target, report.server_version
            );
            return Ok(());
        }
        println!(
            "snapshot {} restored into {} ({})",
            report.snapshot, report.target, report.server_version
        );
    }
    Ok(())
}

/// Words as one POSIX shell command line: each quoted where the shell would split or expand
/// it (a database may be named `it's here`).
fn shell_command(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shlex::try_quote(w).map_or_else(|_| w.clone(), |q| q.into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}
