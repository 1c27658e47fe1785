//! The `shoal` binary: parses the command line, resolves settings, runs a node (joining a
//! cluster with `--cluster-listen`) until SIGTERM, SIGINT or an allowed `shutdown`
//! command, then leaves the cluster gracefully.

mod cli;
mod cluster;
mod settings;
mod status;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use shoal_server::{Backend, ClusterView, LocalBackend, Server, ServerConfig, Workers};
use shoal_store::Store;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, ClusterCommand, ServerArgs, Subcommands};
use crate::cluster::ClusterNode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Subcommands::Server(args)) => run_server(&args),
        Some(Subcommands::Cluster(cluster)) => match cluster.command {
            ClusterCommand::Status { node } => status::run(&node),
        },
        None => run_server(&cli.server),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shoal: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(args: &ServerArgs) -> Result<()> {
    let node = settings::resolve(args)?;
    let level = match node.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    // Client connections are served by the server's own `-t` worker threads (one
    // single-threaded runtime each). This runtime runs the rest: accept loops, UDP,
    // signals and, in a cluster, membership, replication and serving peers' RPC, which
    // gets as many threads as the clients do.
    let control_threads = if node.cluster.is_some() {
        node.server.threads
    } else {
        1
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(control_threads)
        .thread_name("shoal-control")
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let store = Arc::new(Store::new(node.server.store));
        match &node.cluster {
            None => serve(node.server, LocalBackend::new(store), None)
                .await?
                .stop(),
            Some(settings) => {
                let cluster = ClusterNode::start(settings, store).await?;
                let served = serve(node.server, cluster.backend(), Some(cluster.view())).await;
                // Clients are still served while the node leaves; then their connections
                // (and any peer connection their workers started) are closed.
                cluster.leave().await;
                served?.stop();
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// Serves clients on `backend` until a signal or an allowed `shutdown` stops the server;
/// returns the workers still serving the open connections, for the caller to stop.
async fn serve<B: Backend>(
    config: ServerConfig,
    backend: B,
    view: Option<Arc<dyn ClusterView>>,
) -> Result<Workers<B>> {
    let server = Server::bind_with_cluster(config, backend, view).await?;
    for addr in server.local_addrs() {
        tracing::info!(%addr, "listening");
    }
    for addr in server.udp_addrs() {
        tracing::info!(%addr, "listening on UDP");
    }
    let dispatcher = Arc::clone(server.dispatcher());
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received, shutting down");
        dispatcher.request_shutdown();
    });
    Ok(server.run().await)
}

/// Waits for SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let terminate = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
