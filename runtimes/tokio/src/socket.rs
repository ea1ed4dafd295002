//! The byte stream under one WebSocket: a TCP stream read through a per-thread buffer (an
//! idle connection holds no read buffer), or any other upgraded stream (axum, hyper) read
//! through a small buffer of its own.

use std::cell::RefCell;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};
use hub_wire::ws::{Decoded, FrameDecoder, WsError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Size of the per-thread read buffer shared by every TCP connection of a worker thread.
const SHARED_READ_BUFFER: usize = 64 * 1024;
/// Size of the read buffer of a non-TCP stream.
const OWN_READ_BUFFER: usize = 4 * 1024;
/// Most slices in one vectored write.
const MAX_IOV: usize = 64;

thread_local! {
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; SHARED_READ_BUFFER]);
}

/// Any stream a WebSocket can run over.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// What one read produced.
pub(crate) enum ReadOutcome {
    /// Bytes arrived and were decoded into the output vector.
    Data,
    /// The peer closed its side.
    Eof,
    /// The bytes broke the WebSocket protocol.
    Protocol(WsError),
}

/// A connection's byte stream.
pub(crate) enum Socket {
    Tcp(TcpStream),
    Other(Box<dyn Stream>),
}

impl Socket {
    /// Waits for bytes and decodes them into `out`.
    pub(crate) async fn read_decoded(
        &mut self,
        decoder: &mut FrameDecoder,
        out: &mut Vec<Decoded>,
    ) -> io::Result<ReadOutcome> {
        match self {
            Socket::Tcp(stream) => loop {
                stream.readable().await?;
                let result = READ_BUFFER.with_borrow_mut(|buf| match stream.try_read(buf) {
                    Ok(0) => Ok(Some(ReadOutcome::Eof)),
                    Ok(n) => Ok(Some(decode(decoder, &buf[..n], out))),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(e),
                })?;
                if let Some(outcome) = result {
                    return Ok(outcome);
                }
            },
            Socket::Other(stream) => {
                let mut buf = [0u8; OWN_READ_BUFFER];
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(ReadOutcome::Eof);
                }
                Ok(decode(decoder, &buf[..n], out))
            }
        }
    }

    /// Writes `frames` in order with as few (vectored) writes as possible, then flushes.
    pub(crate) async fn write_frames(&mut self, mut frames: Vec<Bytes>) -> io::Result<()> {
        let mut first = 0;
        while first < frames.len() {
            let written = {
                let slices: Vec<IoSlice<'_>> = frames[first..]
                    .iter()
                    .take(MAX_IOV)
                    .map(|f| IoSlice::new(f))
                    .collect();
                match self {
                    Socket::Tcp(s) => s.write_vectored(&slices).await?,
                    Socket::Other(s) => s.write_vectored(&slices).await?,
                }
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let mut left = written;
            while left > 0 && first < frames.len() {
                let frame = &mut frames[first];
                if frame.len() <= left {
                    left -= frame.len();
                    first += 1;
                } else {
                    frame.advance(left);
                    left = 0;
                }
            }
            while first < frames.len() && frames[first].is_empty() {
                first += 1;
            }
        }
        match self {
            Socket::Tcp(s) => s.flush().await,
            Socket::Other(s) => s.flush().await,
        }
    }

    /// Shuts the write side (after the close frame), then reads and discards what the
    /// client still sends until it closes or `linger` passes: closing a socket with unread
    /// bytes would reset it, and the client could lose the close frame.
    pub(crate) async fn linger_close(&mut self, linger: std::time::Duration) {
        let _ = match self {
            Socket::Tcp(s) => s.shutdown().await,
            Socket::Other(s) => s.shutdown().await,
        };
        let drain = async {
            let mut sink = [0u8; 512];
            loop {
                let read = match self {
                    Socket::Tcp(s) => s.read(&mut sink).await,
                    Socket::Other(s) => s.read(&mut sink).await,
                };
                if !matches!(read, Ok(n) if n > 0) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(linger, drain).await;
    }
}

fn decode(decoder: &mut FrameDecoder, bytes: &[u8], out: &mut Vec<Decoded>) -> ReadOutcome {
    match decoder.decode(bytes, out) {
        Ok(()) => ReadOutcome::Data,
        Err(e) => ReadOutcome::Protocol(e),
    }
}
