//! `jina export docker-compose flow.yml docker-compose.yml` (Jina 3's command).

use anyhow::anyhow;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// Write a docker-compose file: a service per executor copy and one for the gateway
    #[command(
        name = "docker-compose",
        after_help = "Then: docker-compose -f OUT up -d, and docker-compose -f OUT down. \
The project's image is built with `docker build -t jina-rs .`, or with deploy/build-image \
where no registry is reachable (docs/deploy.md)."
    )]
    DockerCompose(ComposeArgs),
}

#[derive(Args, Debug)]
pub struct ComposeArgs {
    /// The Flow YAML
    pub flowpath: PathBuf,
    /// The compose file to write
    pub outpath: PathBuf,
    /// The image that runs the gateway and the native executors
    #[arg(long, default_value = "jina-rs:latest")]
    pub image: String,
}

pub fn run(command: ExportCommand) -> anyhow::Result<()> {
    crate::logging::init("export");
    match command {
        ExportCommand::DockerCompose(args) => {
            let flow = super::flow::load(&args.flowpath)?;
            let absolute = std::fs::canonicalize(&args.flowpath)
                .map_err(|e| anyhow!("{}: {e}", args.flowpath.display()))?;
            let options = crate::export::ComposeOptions { image: args.image };
            let text = crate::export::to_compose(&flow, &absolute, &options)
                .map_err(|e| anyhow!("{}: {e}", args.flowpath.display()))?;
            std::fs::write(&args.outpath, text)
                .map_err(|e| anyhow!("cannot write {}: {e}", args.outpath.display()))?;
            super::say(format_args!(
                "wrote {} (docker-compose -f {} up -d)",
                args.outpath.display(),
                args.outpath.display()
            ));
            Ok(())
        }
    }
}
