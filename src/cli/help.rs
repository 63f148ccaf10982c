//! How `--help` prints each command's examples: as written, never rewrapped.
//!
//! clap rewraps `after_help` text to the terminal's width (or 100 columns in a pipe), which
//! breaks a long example in the middle of a command so that it no longer pastes. Text in a
//! help template is printed as it stands, so each command that has examples gets a template
//! ending in them; `after_long_help` itself stays as it is for the man page.

use clap::Command;

/// clap's default template without `{after-help}`.
const HEAD: &str = "{before-help}{about-with-newline}\n{usage-heading} {usage}\n\n{all-args}";

/// The command and all its subcommands with their `after_long_help` printed verbatim.
pub fn verbatim_examples(cmd: Command) -> Command {
    let cmd = match cmd.get_after_long_help().map(|t| t.to_string()) {
        // A `{` would start a template tag; clap prints unknown tags as written, and no
        // example uses one of its tag names.
        Some(text) => cmd.help_template(format!("{HEAD}\n\n{text}")),
        None => cmd,
    };
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    names
        .iter()
        .fold(cmd, |c, name| c.mut_subcommand(name, verbatim_examples))
}
