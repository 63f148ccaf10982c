//! `amlmigrate pvc list|protect|unprotect|check`

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use amlmigrate::kube::objects::NamespaceMap;
use amlmigrate::kube::pvc::{self, VolumeChange};
use amlmigrate::kube::{Cluster, Role};

use super::{GlobalArgs, JsonPrinted, KubeArgs, RepoArg, parse_pair, print_json};

/// The PersistentVolumeClaims of user namespaces (notebook workspaces, datasets): list them,
/// protect their volumes before an upgrade, and prove afterwards that they survived.
///
/// User namespaces are those of Kubeflow Profiles and those holding Notebooks or Tensorboards,
/// unless --namespace names them.
#[derive(Args)]
#[command(after_long_help = "Examples:\n  amlmigrate pvc list\n  \
amlmigrate pvc protect --dry-run\n  amlmigrate pvc protect\n  \
amlmigrate pvc check --repo /backups/aml latest\n  amlmigrate pvc unprotect")]
pub struct PvcArgs {
    #[command(subcommand)]
    command: PvcCommand,
}

#[derive(Subcommand)]
enum PvcCommand {
    /// Show the live PVC index: namespace, name, storage class, capacity, access modes, bound
    /// volume, its reclaim policy, phase and who mounts it.
    List(ListArgs),
    /// Set the reclaim policy of every volume bound to a user PVC to Retain, recording the old
    /// policy in the annotation amlmigrate.alauda.io/original-reclaim-policy, so that deleting
    /// a claim (or the plugin that owns it) never deletes the data.
    Protect(ProtectArgs),
    /// Put back the reclaim policy `pvc protect` recorded, on every volume that carries it.
    Unprotect(UnprotectArgs),
    /// Prove that every PVC in a snapshot's index still exists, is Bound, and to the same
    /// volume. Exit code 1 when one is not.
    Check(CheckArgs),
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// Namespaces to list (comma-separated). Default: user namespaces.
    #[arg(long, value_delimiter = ',', value_name = "NS,...")]
    namespace: Vec<String>,
}

#[derive(Args)]
struct ProtectArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// Namespaces whose claims to protect (comma-separated). Default: user namespaces.
    #[arg(long, value_delimiter = ',', value_name = "NS,...")]
    namespace: Vec<String>,
    /// Show what would change (the server dry-runs each patch); change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct UnprotectArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// Show what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    trust: super::key::TrustArgs,
    #[command(flatten)]
    identity: super::IdentityArg,
    /// Snapshot whose PVC index to check: an id, a unique prefix, or `latest`.
    snapshot: String,
    #[command(flatten)]
    kube: KubeArgs,
    /// The claims of namespace SRC are expected in DST (after a restore with --namespace-map).
    #[arg(long = "namespace-map", value_name = "SRC=DST", value_parser = parse_pair)]
    namespace_map: Vec<(String, String)>,
}

pub async fn run(args: PvcArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        PvcCommand::List(a) => list(a, g).await,
        PvcCommand::Protect(a) => {
            let c = Cluster::connect(&a.kube.options(), Role::Workload).await?;
            let changes = pvc::protect(&c, &a.namespace, a.dry_run)
                .await
                .with_context(|| format!("protecting the volumes of user PVCs on {}", c.server))?;
            print_changes(&changes, g, a.dry_run);
            Ok(())
        }
        PvcCommand::Unprotect(a) => {
            let c = Cluster::connect(&a.kube.options(), Role::Workload).await?;
            let changes = pvc::unprotect(&c, a.dry_run)
                .await
                .with_context(|| format!("restoring reclaim policies on {}", c.server))?;
            print_changes(&changes, g, a.dry_run);
            Ok(())
        }
        PvcCommand::Check(a) => check(a, g).await,
    }
}

fn dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

async fn list(a: ListArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let c = Cluster::connect(&a.kube.options(), Role::Workload).await?;
    let (index, notices) = pvc::live_index(&c, &a.namespace)
        .await
        .with_context(|| format!("listing user PVCs on {}", c.server))?;
    if g.json {
        print_json(&json!({"ok": true, "pvcs": index, "notices": notices}));
        return Ok(());
    }
    for n in &notices {
        eprintln!("note: {n}");
    }
    let rows: Vec<[String; 9]> = index
        .iter()
        .map(|r| {
            [
                r.namespace.clone(),
                r.name.clone(),
                dash(&r.storage_class).to_string(),
                dash(&r.capacity).to_string(),
                if r.access_modes.is_empty() {
                    "-".into()
                } else {
                    r.access_modes.join(",")
                },
                dash(&r.volume).to_string(),
                dash(&r.reclaim_policy).to_string(),
                dash(&r.phase).to_string(),
                if r.mounted_by.is_empty() {
                    "-".into()
                } else {
                    r.mounted_by
                        .iter()
                        .map(|m| format!("{}/{}", m.kind, m.name))
                        .collect::<Vec<_>>()
                        .join(",")
                },
            ]
        })
        .collect();
    let header = [
        "NAMESPACE",
        "NAME",
        "STORAGECLASS",
        "CAPACITY",
        "ACCESS",
        "VOLUME",
        "RECLAIM",
        "PHASE",
        "MOUNTED BY",
    ];
    print_table(&header, &rows);
    if index.is_empty() && !g.quiet {
        eprintln!("no PVCs in user namespaces");
    }
    Ok(())
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut w = header.map(|h| h.len());
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}   ", width = w[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn print_changes(changes: &[VolumeChange], g: &GlobalArgs, dry_run: bool) {
    if g.json {
        print_json(&json!({"ok": true, "dry_run": dry_run, "volumes": changes}));
        return;
    }
    if g.quiet {
        return;
    }
    for c in changes {
        println!(
            "{:<13} {} ({}): {} → {}",
            c.action,
            c.volume,
            if c.claim.is_empty() { "-" } else { &c.claim },
            dash(&c.from),
            dash(&c.to)
        );
    }
    let n = changes.iter().filter(|c| c.action != "unchanged").count();
    println!(
        "{n} volume(s) {}, {} already as wanted",
        if dry_run {
            "would change (dry run, nothing written)"
        } else {
            "changed"
        },
        changes.len() - n
    );
}

async fn check(a: CheckArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let repo = a
        .trust
        .open_with(&a.repo.repo, a.identity.identity.as_deref())
        .await?;
    let id = repo.resolve(&a.snapshot).await?;
    let index = pvc::snapshot_index(&repo, &id).await?;
    let c = Cluster::connect(&a.kube.options(), Role::Workload).await?;
    let nsmap = NamespaceMap(a.namespace_map.into_iter().collect());
    let rows = pvc::check(&c, &index, &nsmap)
        .await
        .with_context(|| format!("checking the PVCs of snapshot {id} on {}", c.server))?;
    let bad: Vec<_> = rows.iter().filter(|r| r.problem.is_some()).collect();
    if g.json {
        print_json(&json!({"ok": bad.is_empty(), "snapshot": id, "pvcs": rows}));
    } else if !g.quiet {
        for r in &rows {
            match &r.problem {
                None => println!(
                    "ok       {}/{} Bound to {}",
                    r.namespace,
                    r.name,
                    dash(&r.live_volume)
                ),
                Some(p) => println!("PROBLEM  {}/{}: {p}", r.namespace, r.name),
            }
        }
        println!(
            "{} of {} PVC(s) of snapshot {id} are Bound to the volume they had",
            rows.len() - bad.len(),
            rows.len()
        );
    }
    if !bad.is_empty() {
        let e = amlmigrate::Error::other(format!(
            "{} PVC(s) of snapshot {id} are not as the snapshot recorded them: {}; restore them \
             with `amlmigrate restore {id} --only kubernetes --kinds PersistentVolume,PersistentVolumeClaim`",
            bad.len(),
            bad.iter()
                .map(|r| format!(
                    "{}/{} ({})",
                    r.namespace,
                    r.name,
                    r.problem.as_deref().unwrap_or("")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Err(if g.json {
            JsonPrinted(e).into()
        } else {
            e.into()
        });
    }
    Ok(())
}
