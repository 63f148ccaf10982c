//! `amlmigrate upgrade plan|run|status`

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use amlmigrate::error::Error;
use amlmigrate::repo::Repository;
use amlmigrate::text::Safe;
use amlmigrate::upgrade::{
    self, Change, Confirm, Env, RunOptions, State, StepCheck, StepId, UpgradeConfig, journal,
    report,
};

use super::progress::Ui;
use super::{GlobalArgs, print_json, progress_for};

/// The guided Alauda AI 1.3 → 1.4 upgrade: the knowledge-base article as one safe, resumable run.
///
/// Steps, in the article's order: preflight (reads only), images, drain, snapshot,
/// protect-pvcs, delete-notebooks, wait-operator (a person upgrades the operator in
/// OperatorHub), retag-llm-trainer, uninstall-plugins, global-settings (dex and the ServiceMesh
/// of the global cluster, which the snapshot holds), install-plugins, migrate-mlflow,
/// restore-profiles, enable-features, verify. Each step checks the live system before it acts, so a run
/// interrupted anywhere (Ctrl-C, kill -9, lost connection) resumes with the same command and
/// repeats nothing destructive. Every step that writes asks first (or --yes). The journal is
/// runs/<run-id>/journal.jsonl in the repository.
#[derive(Args)]
#[command(after_long_help = "Examples:\n  \
amlmigrate upgrade init --kubeconfig ~/.kube/config --global-context global \\\n      \
--output upgrade.toml\n  \
amlmigrate upgrade plan --config upgrade.toml\n  \
amlmigrate upgrade run  --config upgrade.toml --until snapshot\n  \
amlmigrate upgrade rehearse --config upgrade.toml\n  \
amlmigrate upgrade run  --config upgrade.toml --yes\n  \
amlmigrate upgrade status --config upgrade.toml\n  \
amlmigrate upgrade report --config upgrade.toml --html report.html\n\n\
Start from examples/upgrade-1.3-to-1.4.toml; every setting is documented there.")]
pub struct UpgradeArgs {
    #[command(subcommand)]
    command: UpgradeCommand,
}

#[derive(Subcommand)]
enum UpgradeCommand {
    /// Write a starting configuration from the live 1.3 cluster: cluster name, AmlCluster
    /// global.mysql, installed plugins, published 1.4 ModuleConfigs and their forms, kfbase's
    /// oidcRedirectURL, storage classes, user namespaces. What only a person can decide is
    /// marked `# DECIDE:`.
    Init(InitArgs),
    /// Print the ordered steps with their live state (done / to do / blocked / manual, and why)
    /// and exactly what each would change. Changes nothing: not the cluster, not the databases,
    /// and a `repository` that does not exist is an error, never created (`repo init` makes it).
    Plan(ConfigArg),
    /// Execute the plan from where the system stands (resuming the latest unfinished run).
    Run(RunArgs),
    /// Show where the latest run stands, from its journal: each step's last event, and the step
    /// running now with what it waits for, since when, and until when.
    Status(StatusArgs),
    /// Show a finished run's report again (Markdown; --json: the model; --html FILE: the
    /// self-contained page, for a run made before amlmigrate wrote report.html too).
    Report(ReportArgs),
    // Its help is the doc of RehearseArgs (a doc comment here would replace it).
    Rehearse(super::rehearse::RehearseArgs),
}

#[derive(Args)]
#[command(after_long_help = "Examples:\n  \
amlmigrate upgrade report --config upgrade.toml\n  \
amlmigrate upgrade report --config upgrade.toml \\\n      \
--run 20261130T101500Z-123abc --html report.html\n\n\
The page needs no network: open it on a phone, print it, or attach it to a\n\
change record.")]
struct ReportArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The run (default: the latest run that has a report).
    #[arg(long, value_name = "RUN-ID")]
    run: Option<String>,
    /// Write the HTML page to FILE (`-` for stdout) instead of printing Markdown.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

#[derive(Args)]
struct InitArgs {
    #[command(flatten)]
    kube: super::KubeArgs,
    /// The snapshot repository the configuration names.
    #[arg(
        long,
        env = "AMLMIGRATE_REPO",
        value_name = "PATH|URL",
        default_value = "/backups/aml"
    )]
    repo: String,
    /// The workload cluster's name in ACP (label cpaas.io/cluster-name of its plugins), when
    /// the global cluster holds plugins of several clusters.
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,
    /// Write the configuration here (refused when the file exists) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct ConfigArg {
    /// The upgrade configuration (TOML).
    #[arg(long, value_name = "FILE", env = "AMLMIGRATE_UPGRADE_CONFIG")]
    config: PathBuf,
}

#[derive(Args)]
struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Show the status again every SECONDS (default 5) until the run finishes or stops.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "5")]
    watch: Option<u64>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Do not ask before the steps that change the cluster. Without a terminal, those steps
    /// stop the run unless this is given.
    #[arg(long)]
    yes: bool,
    /// Stop after this step (e.g. --until snapshot).
    #[arg(long, value_name = "STEP", value_parser = PossibleValuesParser::new(upgrade::STEP_NAMES))]
    until: Option<String>,
    /// Run only this step (it still checks the live system first).
    #[arg(long, value_name = "STEP", conflicts_with = "until", value_parser = PossibleValuesParser::new(upgrade::STEP_NAMES))]
    only: Option<String>,
}

pub async fn run(
    args: UpgradeArgs,
    g: &GlobalArgs,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    match args.command {
        UpgradeCommand::Init(a) => init(a, g).await,
        UpgradeCommand::Plan(a) => plan(a, g, cancel).await,
        UpgradeCommand::Run(a) => execute(a, g, cancel).await,
        UpgradeCommand::Status(a) => status(a, g, cancel).await,
        UpgradeCommand::Report(a) => show_report(a, g).await,
        UpgradeCommand::Rehearse(a) => super::rehearse::run(a, g, cancel).await,
    }
}

fn load(a: &ConfigArg) -> anyhow::Result<UpgradeConfig> {
    Ok(UpgradeConfig::load(&a.config)?)
}

async fn init(a: InitArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    if let Some(out) = &a.output
        && out.exists()
    {
        return Err(Error::Refused(format!(
            "{} exists; the starting configuration is not written over it (choose another --output)",
            out.display()
        ))
        .into());
    }
    let text = upgrade::init::init(&upgrade::init::InitOptions {
        access: a.kube.options(),
        repository: a.repo,
        cluster_name: a.cluster_name,
    })
    .await
    .context("reading the live cluster for a starting configuration")?;
    match &a.output {
        None => print!("{text}"),
        Some(out) => {
            std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
            if !g.quiet {
                let decide = text.matches("# DECIDE:").count();
                eprintln!(
                    "wrote {}: {decide} line(s) marked DECIDE need a person; then `amlmigrate upgrade plan --config {}`",
                    out.display(),
                    out.display()
                );
            }
        }
    }
    Ok(())
}

fn print_check(c: &StepCheck) {
    print_check_head(c.number, c.step.name(), c.state, &c.why);
    if let Some(d) = c.differs {
        println!("      differs from the article: {}", Safe(d));
    }
    for a in &c.assumptions {
        println!("      assumes: {}", Safe(a));
    }
    print_check_details(&c.checked, &c.warnings, &c.changes);
}

pub(super) fn print_check_head(number: usize, step: &str, state: State, why: &str) {
    // What a check says quotes the cluster (names, messages): each line shown escaped.
    println!(
        "{:>2}. {:<18} {:<8} {}",
        number,
        step,
        state.word(),
        Safe(why)
    );
}

pub(super) fn print_check_details(checked: &[String], warnings: &[String], changes: &[Change]) {
    for l in checked {
        println!("      {}", Safe(l));
    }
    for w in warnings {
        println!("      WARNING: {}", Safe(w));
    }
    for ch in changes {
        println!("      change: {}", Safe(ch.to_string()));
    }
}

/// The steps a plan leaves to do.
pub(super) fn not_done(states: impl Iterator<Item = State>) -> usize {
    states
        .filter(|s| !matches!(s, State::Done | State::Skipped))
        .count()
}

pub(super) fn print_applied(step: &str, changes: &[String]) {
    println!("applied  {}", Safe(step));
    for c in changes {
        println!("         {}", Safe(c));
    }
}

/// A prompt needs a person on both ends: stdin to answer, stderr to see the question.
pub(super) fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The answer for a step that writes: --yes, else a refusal saying `no_terminal` where nobody
/// can be asked, else the person's at the prompt.
pub(super) fn confirm_step(
    ui: &Ui,
    yes: bool,
    interactive: bool,
    no_terminal: &str,
    heading: &str,
    changes: &[Change],
    warnings: &[String],
) -> Confirm {
    if yes {
        return Confirm::Yes;
    }
    if !interactive {
        return Confirm::No(no_terminal.into());
    }
    // Bars redrawn while the person reads would overwrite the question: they pause until the
    // answer. What is asked quotes the cluster (names, messages), so it is shown escaped.
    ui.suspend(|| {
        let mut err = std::io::stderr();
        let _ = writeln!(err, "\n{}", Safe(heading));
        for ch in changes {
            let _ = writeln!(err, "  {}", Safe(ch.to_string()));
        }
        for w in warnings {
            let _ = writeln!(err, "  WARNING: {}", Safe(w));
        }
        let _ = write!(err, "apply this step? [y/N] ");
        let _ = err.flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if matches!(line.trim(), "y" | "Y" | "yes") {
            Confirm::Yes
        } else {
            Confirm::No("declined at the prompt".into())
        }
    })
}

async fn plan(a: ConfigArg, g: &GlobalArgs, cancel: CancellationToken) -> anyhow::Result<()> {
    let cfg = load(&a)?;
    let ui = progress_for(g);
    let env = Env::connect(cfg, ui.clone(), cancel).await?;
    let checks = upgrade::plan(&env)
        .await
        .context("checking the upgrade plan")?;
    ui.finish();
    if g.json {
        print_json(&json!({"ok": true, "steps": checks}));
        return Ok(());
    }
    for c in &checks {
        print_check(c);
    }
    let todo = not_done(checks.iter().map(|c| c.state));
    if !g.quiet {
        if todo == 0 {
            eprintln!("every step is done");
        } else {
            eprintln!(
                "{todo} step(s) not done; `amlmigrate upgrade run --config {}` runs them",
                a.config.display()
            );
        }
    }
    Ok(())
}

async fn execute(a: RunArgs, g: &GlobalArgs, cancel: CancellationToken) -> anyhow::Result<()> {
    let cfg = load(&a.config)?;
    let until = a.until.as_deref().map(StepId::parse).transpose()?;
    let only = a.only.as_deref().map(StepId::parse).transpose()?;
    let yes = a.yes;
    let interactive = can_ask();
    let ui = progress_for(g);
    let prompt_ui = ui.clone();
    let confirm: upgrade::Confirmer = Arc::new(move |c: &StepCheck| {
        confirm_step(
            &prompt_ui,
            yes,
            interactive,
            "it changes the cluster and there is no terminal to ask on; review `amlmigrate upgrade plan`, then run again with --yes",
            &format!("step {} {}: {}", c.number, c.step.name(), c.title),
            &c.changes,
            &c.warnings,
        )
    });
    let env = Env::connect(cfg, ui.clone(), cancel).await?;
    let outcome = upgrade::run(
        &env,
        &RunOptions {
            until,
            only,
            confirm,
        },
    )
    .await;
    ui.finish();
    let outcome = outcome?;
    if g.json {
        print_json(&json!({"ok": true, "outcome": outcome}));
        return Ok(());
    }
    if !g.quiet {
        eprintln!(
            "run {} ({}): {} step(s) applied, {} already done",
            outcome.run,
            if outcome.resumed { "resumed" } else { "new" },
            outcome.applied.len(),
            outcome.already_done.len()
        );
    }
    for (step, changes) in &outcome.applied {
        print_applied(step.name(), changes);
    }
    match &outcome.report {
        Some(r) => {
            println!("\n{}", report::markdown(r));
            if !g.quiet {
                eprintln!(
                    "report stored as runs/{}/report.html, report.md and report.json in {}",
                    outcome.run,
                    env.repo.location()
                );
            }
        }
        None => {
            if !g.quiet {
                eprintln!(
                    "stopped where asked; run the same command without --until/--only to go on"
                );
            }
        }
    }
    Ok(())
}

async fn status(a: StatusArgs, g: &GlobalArgs, cancel: CancellationToken) -> anyhow::Result<()> {
    let cfg = load(&a.config)?;
    let repo = Repository::open(&cfg.repository).await?;
    loop {
        let Some(st) = upgrade::status(&repo).await? else {
            if g.json {
                print_json(&json!({"ok": true, "run": null}));
                return Ok(());
            }
            return Err(Error::input(format!(
                "no upgrade run in {} yet; `amlmigrate upgrade plan --config {}` shows what a run would do",
                repo.location(),
                a.config.config.display()
            ))
            .into());
        };
        if g.json {
            // One JSON document per look (JSON lines while watching).
            let v = json!({"ok": true, "status": st});
            if a.watch.is_some() {
                println!("{v}");
            } else {
                print_json(&v);
            }
        } else {
            print_status(&repo, &st).await?;
        }
        let Some(every) = a.watch else {
            return Ok(());
        };
        let ended = st.finished
            || st
                .last
                .as_ref()
                .is_some_and(|e| e.step == journal::RUN && e.event == journal::Event::Stopped);
        if ended || super::stdout::gone() {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(every.max(1))) => {}
            _ = cancel.cancelled() => return Ok(()),
        }
        if !g.json {
            println!();
        }
    }
}

async fn print_status(repo: &Repository, st: &upgrade::RunStatus) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    println!(
        "run {}: {}   (as of {} UTC)",
        Safe(&st.run),
        if st.finished {
            "finished"
        } else {
            "not finished"
        },
        now.format("%H:%M:%S")
    );
    for (i, s) in st.steps.iter().enumerate() {
        println!(
            "{:>2}. {:<18} {:<9} {}",
            i + 1,
            s.step.name(),
            s.event.map(|e| e.as_str()).unwrap_or("-"),
            Safe(s.detail.as_deref().unwrap_or(""))
        );
    }
    if let Some(c) = &st.current {
        println!(
            "\nrunning: {} since {} UTC ({} ago)",
            Safe(&c.step),
            c.since.format("%H:%M:%S"),
            ago(now, c.since)
        );
        if let Some(w) = &c.waiting {
            println!(
                "  waiting for {}: {}",
                if w.person { "a person" } else { "the system" },
                Safe(&w.what)
            );
            println!(
                "  since {} UTC ({} ago){}",
                w.since.format("%H:%M:%S"),
                ago(now, w.since),
                w.deadline
                    .map(|d| format!(
                        ", deadline {} UTC ({})",
                        d.format("%H:%M:%S"),
                        if d > now {
                            format!("in {}", ago(d, now))
                        } else {
                            "passed".to_string()
                        }
                    ))
                    .unwrap_or_default()
            );
        }
    }
    if st.finished
        && let Some(r) = report::load(repo, &st.run).await?
    {
        println!("\n{}", report::markdown(&r));
    }
    Ok(())
}

async fn show_report(a: ReportArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let cfg = load(&a.config)?;
    let repo = Repository::open(&cfg.repository).await?;
    let mut found = None;
    match &a.run {
        Some(run) => found = report::load(&repo, run).await?.map(|r| (run.clone(), r)),
        None => {
            for run in repo.run_ids().await?.into_iter().rev() {
                if let Some(r) = report::load(&repo, &run).await? {
                    found = Some((run, r));
                    break;
                }
            }
        }
    }
    let Some((run, r)) = found else {
        return Err(Error::input(format!(
            "{} in {}: a report is written when a run finishes; `amlmigrate upgrade status --config {}` shows where the latest run stands",
            match &a.run {
                Some(run) => format!("run {run} has no report"),
                None => "no run has a report yet".into(),
            },
            repo.location(),
            a.config.config.display()
        ))
        .into());
    };
    if g.json {
        print_json(&json!({"ok": true, "run": run, "report": r}));
        return Ok(());
    }
    match &a.html {
        None => print!("{}", report::markdown(&r)),
        Some(p) if p.as_os_str() == "-" => print!("{}", report::html(&r)),
        Some(p) => {
            std::fs::write(p, report::html(&r))
                .with_context(|| format!("writing the report of run {run} to {}", p.display()))?;
            if !g.quiet {
                eprintln!("wrote {} (run {run})", p.display());
            }
        }
    }
    Ok(())
}

/// `later - earlier`, whole seconds, as `3m 20s`.
fn ago(later: chrono::DateTime<chrono::Utc>, earlier: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (later - earlier).num_seconds().max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}
