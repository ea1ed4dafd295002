//! A Hubbub node on the poll runtime: one thread, no async runtime.
//!
//! ```sh
//! cargo run -p hubbub-poll --example poll_server -- 127.0.0.1:9002
//! ```
//!
//! Clients connect to `ws://ADDRESS/ws`. The node runs until its standard input closes
//! (Ctrl-D, or the end of a pipe), then shuts down gracefully: every client gets close code
//! 1001. Ctrl-C simply ends the process.

use std::net::TcpListener;

use hub_serve::Settings;
use hubbub_poll::Server;

fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let server = Server::new(TcpListener::bind(&address)?, Settings::default())?;
    eprintln!(
        "listening on ws://{}/ws (close stdin to stop)",
        server.local_addr()
    );
    let stopper = server.stopper();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        stopper.stop();
    });
    server.run()
}
