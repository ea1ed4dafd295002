//! `hubbub`: run a Hubbub node (`hubbub serve`).

mod alloc;
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
    match cli.command {
        cli::Command::Serve(args) => {
            init_logging();
            serve(*args)
        }
        other => produce(other),
    }
}

/// Runs one producer command against a node's gRPC service and prints the JSON answer.
fn produce(command: cli::Command) -> ExitCode {
    use cli::Command as C;
    use serde_json::json;
    let server = match &command {
        C::Emit { server, .. }
        | C::EmitUser { server, .. }
        | C::Publish { server, .. }
        | C::Broadcast { server, .. }
        | C::Online { server, .. }
        | C::Disconnect { server, .. }
        | C::History { server, .. }
        | C::Position { server, .. }
        | C::Presence { server, .. } => server,
        C::Serve(_) => return ExitCode::from(2),
    };
    let data_ok = |d: &str| serde_json::from_str::<serde_json::Value>(d).is_ok();
    if let C::Emit { data, .. }
    | C::EmitUser { data, .. }
    | C::Publish { data, .. }
    | C::Broadcast { data, .. } = &command
    {
        if !data_ok(data) {
            eprintln!("hubbub: DATA must be JSON text, e.g. '\"hi\"' or '{{\"text\":\"hi\"}}'; got {data:?}");
            return ExitCode::from(2);
        }
    }
    let ca = match &server.tls_ca {
        Some(path) => match std::fs::read(path) {
            Ok(pem) => Some(pem),
            Err(e) => {
                eprintln!("hubbub: --tls-ca: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hubbub: cannot start the tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let (addr, key) = (&server.server, server.api_key.clone());
        let mut client = hubbub_client::Client::connect_tls(addr, key, ca.as_deref()).await?;
        let answer = match &command {
            C::Emit { id, data, .. } => json!({"delivered": client.emit(id, data).await?}),
            C::EmitUser { user, data, .. } => {
                json!({"delivered": client.emit_user(user, data).await?})
            }
            C::Publish { room, data, .. } => {
                json!({"delivered": client.publish(room, data).await?})
            }
            C::Broadcast { data, .. } => json!({"delivered": client.broadcast(data).await?}),
            C::Online { id, .. } => match client.online(id).await? {
                Some(node) => json!({"online": true, "node": node}),
                None => json!({"online": false}),
            },
            C::Disconnect { id, .. } => json!({"disconnected": client.disconnect(id).await?}),
            C::History {
                room,
                since,
                epoch,
                limit,
                ..
            } => {
                let since = since.zip(epoch.as_deref());
                let page = client.history(room, since, *limit).await?;
                let messages: Vec<serde_json::Value> = page
                    .messages
                    .iter()
                    .map(|m| {
                        let data: serde_json::Value =
                            serde_json::from_str(&m.data).unwrap_or(serde_json::Value::Null);
                        json!({"offset": m.offset, "data": data})
                    })
                    .collect();
                json!({"epoch": page.epoch, "offset": page.offset, "recovered": page.recovered, "messages": messages})
            }
            C::Position { room, .. } => {
                let (offset, epoch) = client.position(room).await?;
                json!({"epoch": epoch, "offset": offset})
            }
            C::Presence {
                room, count: true, ..
            } => {
                let (clients, users) = client.presence_count(room).await?;
                json!({"clients": clients, "users": users})
            }
            C::Presence { room, .. } => {
                let members = client.presence(room).await?;
                let clients: Vec<serde_json::Value> = members
                    .into_iter()
                    .map(|m| {
                        let mut entry = json!({"id": m.id, "user": m.user});
                        if let Some(info) = m.info.and_then(|i| serde_json::from_str(&i).ok()) {
                            entry["info"] = info;
                        }
                        entry
                    })
                    .collect();
                json!({ "clients": clients })
            }
            C::Serve(_) => json!(null),
        };
        Ok::<_, hubbub_client::ClientError>(answer)
    });
    match result {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hubbub: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUBBUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal, and never with NO_COLOR set.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(args: cli::ServeArgs) -> ExitCode {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("hubbub: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = settings.validate() {
        eprintln!("hubbub: {e}");
        return ExitCode::from(2);
    }
    match settings.runtime {
        hub_serve::RuntimeKind::Tokio => serve_tokio(settings),
        hub_serve::RuntimeKind::Smol => serve_smol(settings),
    }
}

fn ready(
    settings: &hub_serve::Settings,
    addr: std::net::SocketAddr,
    grpc: Option<std::net::SocketAddr>,
) {
    let (ws, http) = match settings.tls {
        Some(_) => ("wss", "https"),
        None => ("ws", "http"),
    };
    tracing::info!(
        listen = %addr,
        grpc = ?grpc,
        node = %settings.node_name(),
        runtime = settings.runtime.name(),
        shards = settings.shards,
        registry = %settings.registry.describe(),
        bus = %settings.bus.describe(),
        "hubbub node ready: clients on {ws}://{addr}/ws, demo page on {http}://{addr}/"
    );
    if let Some(notice) = settings.pusher_apps().notice {
        tracing::info!("{notice}");
    }
}

fn finished(result: Result<(), hubbub_tokio::ServeError>) -> ExitCode {
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hubbub: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve_tokio(settings: hub_serve::Settings) -> ExitCode {
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
        ready(&settings, server.local_addr(), server.grpc_addr());
        if serves_tls(&settings) {
            tokio::spawn(reload_on_hangup(server.hub()));
        }
        finished(server.run(shutdown_signal()).await)
    })
}

fn serve_smol(settings: hub_serve::Settings) -> ExitCode {
    let rt = match hubbub_smol::SmolRuntime::new(usize::from(settings.shards)) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hubbub: cannot start the smol executor: {e}");
            return ExitCode::from(1);
        }
    };
    rt.clone().block_on(async move {
        let protocol = hub_core::ClientProtocol::Json;
        let server = match hubbub_smol::Server::bind(rt, settings.clone(), None, protocol).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("hubbub: {e}");
                return ExitCode::from(2);
            }
        };
        ready(&settings, server.local_addr(), server.hub().grpc_addr());
        let hub = server.hub();
        // SIGHUP is read through tokio's signal driver, on a thread of its own.
        let signals = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let (true, Ok(signals)) = (serves_tls(&settings), signals) {
            std::thread::spawn(move || signals.block_on(reload_on_hangup(hub)));
        }
        // Signals are read through tokio's signal driver, reached via async-compat.
        finished(
            server
                .run(async_compat::Compat::new(shutdown_signal()))
                .await,
        )
    })
}

/// Whether the node serves TLS on a listener (then SIGHUP reloads its certificates; a node
/// without TLS keeps SIGHUP's default action).
fn serves_tls(settings: &hub_serve::Settings) -> bool {
    settings.tls.is_some()
        || (settings.grpc_listen.is_some() && settings.grpc_tls_files().is_some())
}

/// Reloads the TLS certificates on every SIGHUP (they are also reloaded when their files
/// change).
async fn reload_on_hangup(hub: hubbub_tokio::Hub) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading TLS certificates");
            let _ = hub.reload_tls();
            hub.reload_grpc_tls();
        }
    }
    #[cfg(not(unix))]
    let _ = hub;
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
