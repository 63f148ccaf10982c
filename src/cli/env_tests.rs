//! Every `AMLMIGRATE_*` variable the help promises is honoured by every command that has its
//! flag: a variable is read by clap's `env` on the flag itself, so a command whose flag lacks
//! it silently ignores the variable (as `restore --identity` and `recover --identity` once did).

use super::{Cli, TOP_AFTER_HELP};
use clap::CommandFactory;
use std::collections::{BTreeMap, BTreeSet};

/// One flag of one command: the command's path (`upgrade run`), its long name and the
/// variable it reads, if any.
struct Flag {
    command: String,
    long: String,
    env: Option<String>,
}

fn flags(cmd: &clap::Command, path: &str, out: &mut Vec<Flag>) {
    for a in cmd.get_arguments() {
        if let Some(long) = a.get_long() {
            out.push(Flag {
                command: path.to_string(),
                long: long.to_string(),
                env: a.get_env().map(|e| e.to_string_lossy().into_owned()),
            });
        }
    }
    for sub in cmd.get_subcommands() {
        flags(sub, format!("{path} {}", sub.get_name()).trim(), out);
    }
}

/// `schedule install` writes its flags into objects in the cluster: it takes them from its
/// command line alone, so that a variable of the operator's session (a port-forwarded MySQL
/// URL, a local Pushgateway, recipients that grant the job Secrets) never lands there unseen.
const COMMAND_LINE_ONLY: &[&str] = &["schedule install"];

fn all_flags() -> Vec<Flag> {
    let mut out = Vec::new();
    let mut cli = Cli::command();
    cli.build();
    flags(&cli, "", &mut out);
    out
}

/// Every flag of every command but those of [`COMMAND_LINE_ONLY`].
fn every_flag() -> Vec<Flag> {
    let mut out = all_flags();
    out.retain(|f| !COMMAND_LINE_ONLY.contains(&f.command.as_str()));
    out
}

/// The top-level help's `Environment:` lines of the form `AMLMIGRATE_X   default for --flag`.
fn documented_defaults() -> BTreeMap<String, String> {
    TOP_AFTER_HELP
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let var = words.next()?;
            let rest: Vec<&str> = words.collect();
            let flag = rest.windows(3).find_map(|w| {
                (w[0] == "default" && w[1] == "for" && w[2].starts_with("--"))
                    .then(|| w[2].trim_start_matches("--").to_string())
            })?;
            var.starts_with("AMLMIGRATE_")
                .then(|| (var.to_string(), flag))
        })
        .collect()
}

#[test]
fn a_flag_that_reads_a_variable_in_one_command_reads_it_in_every_command() {
    let all = every_flag();
    let mut by_long: BTreeMap<&str, BTreeSet<Option<&str>>> = BTreeMap::new();
    for f in &all {
        by_long.entry(&f.long).or_default().insert(f.env.as_deref());
    }
    let mut wrong = Vec::new();
    for (long, envs) in &by_long {
        let declared: Vec<&str> = envs.iter().flatten().copied().collect();
        if declared.is_empty() {
            continue;
        }
        for f in all.iter().filter(|f| f.long == *long) {
            if f.env.as_deref() != Some(declared[0]) || declared.len() > 1 {
                wrong.push(format!(
                    "`{} --{long}` reads {:?}; elsewhere --{long} reads {declared:?}",
                    f.command, f.env
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_variable_the_help_calls_a_default_is_read_by_each_command_with_that_flag() {
    let documented = documented_defaults();
    assert!(
        documented.contains_key("AMLMIGRATE_IDENTITY")
            && documented.contains_key("AMLMIGRATE_REPO"),
        "the Environment section was not found: {documented:?}"
    );
    let all = every_flag();
    let mut wrong = Vec::new();
    for (var, long) in &documented {
        let with_flag: Vec<&Flag> = all.iter().filter(|f| &f.long == long).collect();
        if with_flag.is_empty() {
            wrong.push(format!("{var}: no command has --{long}"));
        }
        for f in with_flag {
            if f.env.as_deref() != Some(var) {
                wrong.push(format!("`{} --{long}` ignores {var}", f.command));
            }
        }
    }
    // And the other way round: every variable a flag reads is in the help's list.
    for f in &all {
        if let Some(var) = &f.env
            && documented.get(var) != Some(&f.long)
        {
            wrong.push(format!(
                "`{} --{}` reads {var}, which the Environment section does not list as its default",
                f.command, f.long
            ));
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn schedule_install_reads_no_variable_of_the_session() {
    let read: Vec<String> = all_flags()
        .into_iter()
        .filter(|f| COMMAND_LINE_ONLY.contains(&f.command.as_str()))
        .filter_map(|f| Some(format!("`{} --{}` reads {}", f.command, f.long, f.env?)))
        .collect();
    assert!(read.is_empty(), "{}", read.join("\n"));
}
