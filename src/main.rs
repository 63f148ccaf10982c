//! The `amlmigrate` binary: parse flags, run one command, map the outcome to an exit code.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
