//! `amlmigrate snapshots`

use clap::Args;
use serde_json::json;

use amlmigrate::repo::sign::SignatureState;
use amlmigrate::text::Safe;

use super::{GlobalArgs, RepoArg, human_bytes, print_json, thousands};

/// Lists the committed snapshots of a repository, oldest first.
///
/// SIZE is what a snapshot holds (every entry, uncompressed); ADDED is what it added to the
/// repository (a deduplicated snapshot of unchanged data adds almost nothing).
///
/// With --verify-key (or in a repository that requires signatures) each snapshot's signature is
/// shown: `key <id>`, or why it would be refused (UNSIGNED, OTHER KEY, BAD SIGNATURE). A refused
/// snapshot is listed from its unchecked manifest, for the record; every command that reads one
/// refuses it (exit 7).
#[derive(Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    repo: RepoArg,
    #[command(flatten)]
    trust: super::key::TrustArgs,
    #[command(flatten)]
    identity: super::IdentityArg,
}

fn signature_label(s: &SignatureState) -> String {
    match s {
        SignatureState::NotChecked => String::new(),
        SignatureState::Signed { key } => format!("key {key}"),
        SignatureState::Refused { refusal, .. } => refusal.label().to_string(),
    }
}

pub async fn run(args: SnapshotsArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let repo = args
        .trust
        .open_with(&args.repo.repo, args.identity.identity.as_deref())
        .await?;
    let listed = repo.manifests_for_listing().await?;
    if g.json {
        let list: Vec<_> = listed
            .iter()
            .map(|(m, sig)| {
                json!({
                    "id": m.id,
                    "started": m.started,
                    "finished": m.finished,
                    "tags": m.tags,
                    "databases": m.mysql.iter().map(|d| &d.name).collect::<Vec<_>>(),
                    "rows": m.total_rows(),
                    "logical_bytes": m.logical_size(),
                    "added_bytes": m.total_size(),
                    "signature": sig,
                })
            })
            .collect();
        print_json(&json!({ "ok": true, "repository": repo.location(), "snapshots": list }));
        return Ok(());
    }
    if listed.is_empty() {
        println!("no snapshots in {}", repo.location());
        return Ok(());
    }
    let checked = listed.iter().any(|(_, s)| *s != SignatureState::NotChecked);
    let sig_col = |s: &str| {
        if checked {
            format!("{s:<22} ")
        } else {
            String::new()
        }
    };
    println!(
        "{:<24} {:<20} {:>10} {:>10} {:>14}  {}{:<30} TAGS",
        "ID",
        "TIME (UTC)",
        "SIZE",
        "ADDED",
        "ROWS",
        sig_col("SIGNATURE"),
        "DATABASES"
    );
    for (m, sig) in &listed {
        // Each value from the (perhaps forged) manifest escaped on its own: one snapshot, one line.
        let dbs: Vec<String> = m.mysql.iter().map(|d| Safe(&d.name).to_string()).collect();
        let tags: Vec<String> = m
            .tags
            .iter()
            .map(|(k, v)| format!("{}={}", Safe(k), Safe(v)))
            .collect();
        println!(
            "{:<24} {:<20} {:>10} {:>10} {:>14}  {}{:<30} {}",
            Safe(&m.id),
            m.started.format("%Y-%m-%d %H:%M:%S"),
            human_bytes(m.logical_size()),
            human_bytes(m.total_size()),
            thousands(m.total_rows()),
            sig_col(&Safe(signature_label(sig)).to_string()),
            dbs.join(","),
            tags.join(",")
        );
    }
    Ok(())
}
