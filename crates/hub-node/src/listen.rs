//! The listening socket, made the same way for every runtime.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Connections the kernel queues, accepted and waiting for the accept loop. A burst of
/// connects beyond the queue is dropped and retried by the clients a second later (SYN
/// retransmission); the kernel caps this at `net.core.somaxconn` (4096 by default).
pub const LISTEN_BACKLOG: i32 = 4096;

/// Binds a non-blocking TCP listener on `addr` (address reuse on, so a restarted node can bind
/// again at once) with a [`LISTEN_BACKLOG`] queue, for the runtime to wrap.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_and_accepts() {
        let listener = listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        listener.set_nonblocking(false).expect("blocking");
        assert!(listener.accept().is_ok());
    }

    #[test]
    fn a_taken_port_is_an_error() {
        let first = listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let addr = first.local_addr().expect("addr");
        assert!(listen(addr).is_err());
    }
}
