//! `amlmigrate kube`

use clap::{Args, Subcommand};

use amlmigrate::kube::catalog::Catalog;

use super::{GlobalArgs, print_json};

/// Kubernetes helpers: print the default catalog of kinds a backup fetches.
#[derive(Args)]
pub struct KubeCmdArgs {
    #[command(subcommand)]
    command: KubeCommand,
}

#[derive(Subcommand)]
enum KubeCommand {
    /// Print the default Kubernetes catalog as TOML, to edit and pass to
    /// `backup --kube --kube-catalog FILE`.
    Catalog,
}

pub fn run(args: KubeCmdArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        KubeCommand::Catalog => {
            let c = Catalog::default();
            if g.json {
                print_json(&c);
            } else {
                print!("{}", c.to_toml());
            }
        }
    }
    Ok(())
}
