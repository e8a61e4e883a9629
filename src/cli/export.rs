//! `jina export docker-compose flow.yml docker-compose.yml` and `jina export kubernetes flow.yml
//! out/` (Jina 3's commands).

use anyhow::anyhow;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub(super) enum ExportCommand {
    /// Write a docker-compose file: a service per executor copy and one for the gateway
    #[command(
        name = "docker-compose",
        after_help = "Then: docker-compose -f OUT up -d, and docker-compose -f OUT down. \
The project's image is built with `docker build -t jina-rs .`, or with deploy/build-image \
where no registry is reachable (docs/deploy.md)."
    )]
    DockerCompose(ComposeArgs),
    /// Write Kubernetes manifests: a Deployment and a Service per executor shard and for the gateway
    #[command(
        after_help = "Then: kubectl apply -f OUT/. The image must be one the cluster can \
pull (docs/deploy.md)."
    )]
    Kubernetes(KubernetesArgs),
}

#[derive(Args, Debug)]
pub(super) struct KubernetesArgs {
    /// The Flow YAML
    pub flowpath: PathBuf,
    /// The folder to write the manifests into (made if missing)
    pub outpath: PathBuf,
    /// The namespace of every object [default: the Flow's name]
    #[arg(long = "k8s-namespace", visible_alias = "k8s_namespace")]
    pub namespace: Option<String>,
    /// The image that runs the gateway and the native executors
    #[arg(long, default_value = "jina-rs:latest")]
    pub image: String,
}

#[derive(Args, Debug)]
pub(super) struct ComposeArgs {
    /// The Flow YAML
    pub flowpath: PathBuf,
    /// The compose file to write
    pub outpath: PathBuf,
    /// The image that runs the gateway and the native executors
    #[arg(long, default_value = "jina-rs:latest")]
    pub image: String,
}

/// The checked Flow and its file's absolute path.
fn load(path: &std::path::Path) -> anyhow::Result<(crate::flow::CheckedFlow, PathBuf)> {
    let flow = super::flow::load(path)?;
    let absolute = std::fs::canonicalize(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok((flow, absolute))
}

pub(super) fn run(command: ExportCommand) -> anyhow::Result<()> {
    crate::logging::init("export");
    match command {
        ExportCommand::Kubernetes(args) => {
            let (flow, absolute) = load(&args.flowpath)?;
            let options = crate::export::KubernetesOptions {
                image: args.image,
                namespace: args.namespace,
            };
            let manifests = crate::export::to_kubernetes(&flow, &absolute, &options)
                .map_err(|e| anyhow!("{}: {e}", args.flowpath.display()))?;
            std::fs::create_dir_all(&args.outpath)
                .map_err(|e| anyhow!("cannot make {}: {e}", args.outpath.display()))?;
            for m in &manifests {
                let path = args.outpath.join(&m.file);
                std::fs::write(&path, &m.yaml)
                    .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
            }
            super::say(format_args!(
                "wrote {} manifests into {} (kubectl apply -f {})",
                manifests.len(),
                args.outpath.display(),
                args.outpath.display()
            ));
            Ok(())
        }
        ExportCommand::DockerCompose(args) => {
            let (flow, absolute) = load(&args.flowpath)?;
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
