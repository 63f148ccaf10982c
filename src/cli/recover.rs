//! `amlmigrate recover`

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use amlmigrate::upgrade::recover::{self, RecoverCheck, RecoverOptions};
use amlmigrate::upgrade::{Env, REFUSED, State, UpgradeConfig, report};

use super::upgrade::{
    can_ask, confirm_step, not_done, print_applied, print_check_details, print_check_head,
};
use super::{GlobalArgs, print_json, progress_for};

/// Bring a lost or rebuilt Alauda AI 1.4 cluster back from one snapshot.
///
/// For a cluster rebuilt with AML 1.4 (plugins installed) after the 1.3 one, or the 1.4 one, was
/// lost: puts a lost dex ConfigMap or ServiceMesh of the global cluster back as the snapshot
/// holds it (the article's settings are added again after the Profiles), restores the
/// job-record and Kubeflow Pipelines databases (every MySQL source of the
/// snapshot but MLflow 2.6's, onto the servers the configuration names), migrates MLflow 2.6
/// into the 1.4 PostgreSQL (with its artifacts when mlflow.artifacts_to is set), restores
/// Profiles, namespaces, RoleBindings, AuthorizationPolicies, ConfigMaps, encrypted Secrets
/// (with --identity), PVCs bound again to their retained volumes, and with --notebooks the
/// Notebooks and Tensorboards; then sets the features, restarts aml-api-deploy and runs the
/// upgrade's final checks. The steps are the upgrade's own, journaled in
/// runs/<id>/recover.jsonl: a recovery interrupted anywhere (Ctrl-C, kill -9) resumes with the
/// same command. Each step checks the live system first and asks before it writes (or --yes);
/// rows that are not the snapshot's are never overwritten. --dry-run shows every change and
/// writes nothing.
///
/// SNAPSHOT is an id, a unique id prefix, or `latest`; default: the unfinished recovery's, else
/// the upgrade run's snapshot, else the latest.
#[derive(Args)]
#[command(after_long_help = "Examples:\n  \
amlmigrate recover --config upgrade.toml --dry-run\n  \
amlmigrate recover --config upgrade.toml 20261130T0200 --identity key.txt \\\n      \
--notebooks\n  \
amlmigrate recover --config upgrade.toml --yes")]
pub struct RecoverArgs {
    /// The upgrade configuration (TOML): the repository, the MySQL servers, the 1.4 PostgreSQL,
    /// the cluster.
    #[arg(long, value_name = "FILE", env = "AMLMIGRATE_UPGRADE_CONFIG")]
    config: PathBuf,
    /// Snapshot to recover from: an id, a unique id prefix, or `latest`.
    snapshot: Option<String>,
    /// Check every step and print what it would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask before the steps that write. Without a terminal, those steps stop the
    /// recovery unless this is given.
    #[arg(long)]
    yes: bool,
    /// age identity file: the snapshot's encrypted Secrets are restored too.
    #[arg(long, env = "AMLMIGRATE_IDENTITY", value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Recreate the snapshot's Notebooks and Tensorboards on their restored volumes.
    #[arg(long)]
    notebooks: bool,
}

pub async fn run(a: RecoverArgs, g: &GlobalArgs, cancel: CancellationToken) -> anyhow::Result<()> {
    let mut cfg = UpgradeConfig::load(&a.config)?;
    if let Some(f) = &a.identity {
        super::warn_if_readable_by_others(f, "--identity");
        cfg.restore.identity = Some(f.clone());
        if !cfg.restore.kinds.iter().any(|k| k == "Secret") {
            cfg.restore.kinds.push("Secret".into());
        }
    }
    if a.notebooks {
        cfg.notebooks.recreate = true;
    }
    let yes = a.yes;
    let interactive = can_ask();
    let ui = progress_for(g);
    let prompt_ui = ui.clone();
    let confirm: recover::RecoverConfirmer = Arc::new(move |c: &RecoverCheck| {
        confirm_step(
            &prompt_ui,
            yes,
            interactive,
            "it writes and there is no terminal to ask on; review `amlmigrate recover --dry-run`, then run again with --yes",
            &format!("recover step {} {}: {}", c.number, c.step, c.title),
            &c.changes,
            &c.warnings,
        )
    });
    let env = Env::connect(cfg, ui.clone(), cancel).await?;
    let outcome = recover::recover(
        &env,
        &RecoverOptions {
            snapshot: a.snapshot,
            dry_run: a.dry_run,
            confirm,
        },
    )
    .await;
    ui.finish();
    let outcome = outcome.context("recovering from the snapshot")?;
    // A dry run that finds objects of the snapshot a restore refuses fails as the real run
    // would, naming them.
    let blocked = outcome
        .checks
        .iter()
        .find(|c| {
            outcome.dry_run
                && c.state == State::Blocked
                && c.checked.iter().any(|l| l.starts_with(REFUSED))
        })
        .map(|c| {
            amlmigrate::Error::Refused(format!("recovery step {} cannot run: {}", c.step, c.why))
        });
    if g.json {
        // One document: the refusal is in the outcome's checks, and only the exit code and
        // the stderr line are left to give.
        print_json(&json!({"ok": blocked.is_none(), "outcome": outcome}));
        return blocked.map_or(Ok(()), |e| Err(super::JsonPrinted(e).into()));
    }
    if outcome.dry_run {
        println!(
            "recovery from snapshot {} (dry run: nothing was written)",
            outcome.snapshot
        );
        for c in &outcome.checks {
            print_check(c);
        }
        let todo = not_done(outcome.checks.iter().map(|c| c.state));
        if !g.quiet {
            eprintln!(
                "{todo} step(s) to do; `amlmigrate recover --config {}` runs them",
                a.config.display()
            );
        }
        return blocked.map_or(Ok(()), |e| Err(e.into()));
    }
    if !g.quiet {
        eprintln!(
            "recovery {} ({}) from snapshot {}: {} step(s) applied, {} already done",
            outcome.run,
            if outcome.resumed { "resumed" } else { "new" },
            outcome.snapshot,
            outcome.applied.len(),
            outcome.already_done.len()
        );
    }
    for (step, changes) in &outcome.applied {
        print_applied(step, changes);
    }
    if let Some(r) = &outcome.report {
        println!("\n{}", report::markdown(r));
        if !g.quiet {
            eprintln!(
                "report stored as runs/{}/report.md and report.json in {}",
                outcome.run,
                env.repo.location()
            );
        }
    }
    Ok(())
}

fn print_check(c: &RecoverCheck) {
    print_check_head(c.number, c.step, c.state, &c.why);
    print_check_details(&c.checked, &c.warnings, &c.changes);
}
