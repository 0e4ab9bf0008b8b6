//! `ferryctl generate completions SHELL` and `ferryctl generate man DIR`:
//! made from the clap definitions, so they say what `--help` says. The
//! packages run these at build time and install the output.

use std::path::PathBuf;

use clap::{CommandFactory, Subcommand};
use clap_complete::Shell;

use crate::failure::Failure;

#[derive(Subcommand, Debug)]
pub enum GenerateCommand {
    /// Print the completion script for SHELL (bash, zsh, fish, …) on
    /// stdout.
    Completions { shell: Shell },
    /// Write a man page for ferryctl and one for each subcommand
    /// (ferryctl.1, ferryctl-check-dns.1, …) into DIR.
    Man { dir: PathBuf },
}

pub fn run(command: GenerateCommand) -> Result<(), Failure> {
    let cmd = crate::Cli::command();
    match command {
        GenerateCommand::Completions { shell } => {
            let name = cmd.get_name().to_owned();
            clap_complete::generate(shell, &mut cmd.clone(), name, &mut std::io::stdout());
        }
        GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(&dir)
                .and_then(|()| clap_mangen::generate_to(cmd, &dir))
                .map_err(|e| Failure::Usage(format!("man pages into {}: {e}", dir.display())))?;
        }
    }
    Ok(())
}
