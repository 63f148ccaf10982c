//! `amlmigrate generate completions SHELL` and `amlmigrate generate man`: both come from the
//! same clap definitions as `--help`, so they never drift.

use clap::{Args, CommandFactory, Subcommand};

#[derive(Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Shell completions on stdout.
    Completions { shell: clap_complete::Shell },
    /// The man page (roff) on stdout.
    Man,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    match args.what {
        What::Completions { shell } => {
            clap_complete::generate(shell, &mut cmd, "amlmigrate", &mut std::io::stdout());
        }
        What::Man => {
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        }
    }
    Ok(())
}
