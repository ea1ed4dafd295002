//! `hubbub-load`: see `hubbub-load --help`.

use std::process::ExitCode;

use clap::Parser;
use hubbub_load::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = hubbub_load::threads_of(&cli);
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hubbub-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(hubbub_load::run(cli));
    // Do not wait for a blocked stdin read (worker processes) at shutdown.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hubbub-load: {e}");
            ExitCode::FAILURE
        }
    }
}
