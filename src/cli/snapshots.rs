//! `amlmigrate snapshots`

use clap::Args;
use serde_json::json;

use super::{GlobalArgs, RepoArg, human_bytes, print_json, thousands};

/// Lists the committed snapshots of a repository, oldest first.
#[derive(Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    identity: super::IdentityArg,
}

pub async fn run(args: SnapshotsArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let repo = super::open_repo(&args.repo.repo, args.identity.identity.as_deref()).await?;
    let manifests = repo.manifests().await?;
    if g.json {
        let list: Vec<_> = manifests
            .iter()
            .map(|m| {
                json!({
                    "id": m.id,
                    "started": m.started,
                    "finished": m.finished,
                    "tags": m.tags,
                    "databases": m.mysql.iter().map(|d| &d.name).collect::<Vec<_>>(),
                    "rows": m.total_rows(),
                    "size": m.total_size(),
                })
            })
            .collect();
        print_json(&json!({ "ok": true, "repository": repo.location(), "snapshots": list }));
        return Ok(());
    }
    if manifests.is_empty() {
        println!("no snapshots in {}", repo.location());
        return Ok(());
    }
    println!(
        "{:<24} {:<20} {:>10} {:>14}  {:<30} TAGS",
        "ID", "TIME (UTC)", "SIZE", "ROWS", "DATABASES"
    );
    for m in &manifests {
        let dbs: Vec<&str> = m.mysql.iter().map(|d| d.name.as_str()).collect();
        let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<24} {:<20} {:>10} {:>14}  {:<30} {}",
            m.id,
            m.started.format("%Y-%m-%d %H:%M:%S"),
            human_bytes(m.total_size()),
            thousands(m.total_rows()),
            dbs.join(","),
            tags.join(",")
        );
    }
    Ok(())
}
