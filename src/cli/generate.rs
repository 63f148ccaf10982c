//! `amlmigrate generate completions SHELL` and `amlmigrate generate man`: both come from the
//! same clap definitions as `--help`, so they never drift.

use clap::{Args, Subcommand};

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
    let mut cmd = super::command();
    match args.what {
        // Rendered into memory first: clap_complete panics when its writer fails, and a
        // closed pipe (`| head -3`) must end the command quietly.
        What::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "amlmigrate", &mut out);
            super::stdout::write_bytes(&out);
        }
        What::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            super::stdout::write_bytes(&out);
        }
    }
    Ok(())
}
