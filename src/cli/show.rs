//! `amlmigrate show`

use clap::Args;

use amlmigrate::text::Safe;

use super::{GlobalArgs, RepoArg, human_bytes, print_json, thousands};

/// Shows what a snapshot holds.
///
/// Sources (each MySQL source by name), parts, databases with their source, and per-table row
/// counts. With --json, prints the manifest itself.
#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    trust: super::key::TrustArgs,
    #[command(flatten)]
    identity: super::IdentityArg,
    /// An id, a unique id prefix, or `latest`.
    snapshot: String,
}

pub async fn run(args: ShowArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let repo = args
        .trust
        .open_with(&args.repo.repo, args.identity.identity.as_deref())
        .await?;
    let id = repo.resolve(&args.snapshot).await?;
    let m = repo.manifest(&id).await?;
    if g.json {
        print_json(&m);
        return Ok(());
    }
    // Every string below comes from the manifest, which whoever can write the bucket can forge:
    // each is shown escaped (`Safe`), so none can move the cursor, clear the screen or add a line.
    println!("snapshot   {}", Safe(&m.id));
    println!(
        "taken      {} .. {} (UTC)",
        m.started.format("%Y-%m-%d %H:%M:%S"),
        m.finished.format("%H:%M:%S")
    );
    println!("tool       {}", Safe(&m.tool));
    if let Some(h) = &m.hostname {
        println!("host       {}", Safe(h));
    }
    for (k, v) in &m.tags {
        println!("tag        {}={}", Safe(k), Safe(v));
    }
    for s in &m.sources {
        let name = match (&s.name, s.kind.as_str()) {
            (Some(n), _) => format!(" {}:", Safe(n)),
            (None, "mysql") => format!(" {}:", amlmigrate::backup::DEFAULT_MYSQL_SOURCE),
            (None, _) => String::new(),
        };
        println!(
            "source     {}{name} {} ({})",
            Safe(&s.kind),
            Safe(&s.location),
            Safe(s.server_version.as_deref().unwrap_or("unknown version"))
        );
        if let Some(c) = &s.consistency {
            println!("           consistency: {}", Safe(c));
        }
    }
    if m.parts.iter().any(|p| p.chunked) {
        println!(
            "size       {} held, {} added to the repository (chunks it did not hold yet), {} part(s)",
            human_bytes(m.logical_size()),
            human_bytes(m.total_size()),
            m.parts.len()
        );
    } else {
        println!(
            "size       {} held, {} stored in {} part(s)",
            human_bytes(m.logical_size()),
            human_bytes(m.total_size()),
            m.parts.len()
        );
    }
    for d in &m.mysql {
        let rows: u64 = d.tables.iter().map(|t| t.rows).sum();
        println!();
        println!(
            "database {} (source {}, {} {}): {} tables, {} rows, {} views, {} routines, {} triggers, {} events",
            Safe(&d.name),
            Safe(amlmigrate::backup::source_of(d)),
            Safe(&d.charset),
            Safe(&d.collation),
            d.tables.len(),
            thousands(rows),
            d.views.len(),
            d.routines.len(),
            d.triggers.len(),
            d.events.len()
        );
        for t in &d.tables {
            println!(
                "  {:<40} {:>14} rows {:>12}",
                Safe(&t.name),
                thousands(t.rows),
                human_bytes(t.bytes)
            );
        }
    }
    if let Some(k) = &m.kubernetes {
        println!();
        println!(
            "kubernetes: {} objects, {} PVC(s) indexed, user namespaces: {}",
            k.objects,
            k.pvcs,
            if k.namespaces.is_empty() {
                "(none)".to_string()
            } else {
                k.namespaces
                    .iter()
                    .map(|n| Safe(n).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        for kind in &k.kinds {
            println!(
                "  {:<8} {:<22} {:<40} {:>6}{}",
                kind.cluster.as_str(),
                Safe(&kind.kind),
                Safe(&kind.api_version),
                kind.objects,
                if kind.restore { "" } else { "  (record)" }
            );
        }
        for n in &k.not_served {
            println!("  not served: {}", Safe(n));
        }
        if k.encrypted > 0 {
            println!("  {} Secret(s) encrypted (age)", k.encrypted);
        }
        for s in &k.left_out {
            println!("  left out (no --encrypt-to): {}", Safe(s));
        }
    }
    for n in &m.notices {
        println!("note: {}", Safe(n));
    }
    Ok(())
}
