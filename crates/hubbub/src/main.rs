//! `hubbub`: run a Hubbub node (`hubbub serve`).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use hubbub_tokio::Server;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line, naming the flag: the first line of clap's message.
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("error: bad arguments");
            eprintln!("hubbub: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    init_logging();
    match cli.command {
        cli::Command::Serve(args) => serve(args),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUBBUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(args: cli::ServeArgs) -> ExitCode {
    let settings = args.settings();
    if let Err(e) = settings.validate() {
        eprintln!("hubbub: {e}");
        return ExitCode::from(2);
    }
    if settings.runtime == hub_serve::RuntimeKind::Smol {
        eprintln!("hubbub: --runtime smol: the smol runtime is not available in this build yet; use --runtime tokio");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hubbub: cannot start the tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let server = match Server::bind(settings.clone(), None).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("hubbub: {e}");
                return ExitCode::from(2);
            }
        };
        let addr = server.local_addr();
        tracing::info!(
            listen = %addr,
            node = %settings.node_name(),
            runtime = settings.runtime.name(),
            shards = settings.shards,
            registry = %settings.registry.describe(),
            "hubbub node ready: clients on ws://{addr}/ws, demo page on http://{addr}/"
        );
        match server.run(shutdown_signal()).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hubbub: {e}");
                ExitCode::from(1)
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("signal received");
}
