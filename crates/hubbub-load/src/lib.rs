//! `hubbub-load`: a load generator for WebSocket servers — Hubbub or any server one of the
//! protocol adapters ([`proto`]) fits.
//!
//! A run is coordinated by one process ([`fanout`], [`connections`], [`scale`]); connections live in
//! groups ([`worker`]), either inside that process or in worker processes that speak JSON
//! lines ([`ipc`], [`group`]). Every adapter carries the same time-stamped payload
//! ([`payload`]); latencies go into HDR histograms ([`hist`]) and deliveries into per-message
//! tables ([`tally`]); the publisher keeps an open-loop schedule ([`schedule`],
//! [`publisher`]); CPU and memory come from `/proc` ([`sysstat`]).
#![warn(missing_docs)]

pub mod cli;
pub mod conn;
pub mod connections;
pub mod fanout;
pub mod group;
pub mod hist;
pub mod http;
pub mod ipc;
pub mod payload;
pub mod proto;
pub mod publisher;
pub mod report;
pub mod scale;
pub mod schedule;
pub mod sysstat;
pub mod tally;
pub mod worker;

use cli::{Cli, Command};

/// Runs a parsed command line; `Ok` carries nothing, output went to stdout and `--json`.
pub async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Fanout(args) => {
            let result = fanout::run("fanout", &args.url, &args.url, &args.load).await?;
            report::print_fanout(&result);
            if let Some(path) = &args.load.out.json {
                report::write_json(path, &result)?;
            }
        }
        Command::Crossnode(args) => {
            let result = fanout::run("crossnode", &args.sub_url, &args.pub_url, &args.load).await?;
            report::print_fanout(&result);
            if let Some(path) = &args.load.out.json {
                report::write_json(path, &result)?;
            }
        }
        Command::Idle(args) => {
            let result = connections::run_idle(&args).await?;
            report::print_idle(&result);
            if let Some(path) = &args.out.json {
                report::write_json(path, &result)?;
            }
        }
        Command::ConnectRate(args) => {
            let result = connections::run_connect_rate(&args).await?;
            report::print_connect_rate(&result);
            if let Some(path) = &args.out.json {
                report::write_json(path, &result)?;
            }
        }
        Command::Scale(args) => {
            let result = scale::run(&args).await?;
            report::print_scale(&result);
            if let Some(path) = &args.out.json {
                report::write_json(path, &result)?;
            }
            if !result.passed {
                return Err(format!(
                    "scale: {} problem(s): {}",
                    result.problems.len(),
                    result.problems.join("; ")
                ));
            }
        }
        Command::Worker(_) => worker::process_main().await?,
    }
    Ok(())
}

/// Runtime threads a command line asks for (0 = one per usable CPU).
pub fn threads_of(cli: &Cli) -> usize {
    let requested = match &cli.command {
        Command::Fanout(a) => a.load.conn.place.threads,
        Command::Crossnode(a) => a.load.conn.place.threads,
        Command::Idle(a) => a.conn.place.threads,
        Command::ConnectRate(a) => a.conn.place.threads,
        Command::Scale(a) => a.place.threads,
        Command::Worker(a) => a.threads,
    };
    connections::threads(requested)
}
