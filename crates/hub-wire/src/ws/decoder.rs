//! The incremental client-frame decoder, [`FrameDecoder`].
//!
//! Invariants:
//! * Input is consumed completely on every call. Only an incomplete frame
//!   header (at most 14 bytes) is copied into inline storage; payload bytes
//!   are unmasked straight into the buffer that becomes the output [`Bytes`],
//!   never staged in an intermediate buffer.
//! * Limits are enforced from frame headers before any payload is stored, and
//!   buffers grow only with bytes actually received (never with a claimed
//!   length), so memory is bounded by `max_message_size` plus a constant.
//! * Completed messages move their buffer out (`mem::take`), so an idle
//!   decoder owns no heap allocation; any error or close frame releases every
//!   buffer and turns the decoder into a sink that ignores further input.
//! * The state of an incomplete frame or message lives in a box that exists only
//!   while something is incomplete: an idle [`FrameDecoder`] is 24 bytes, which
//!   matters in the task of every idle connection.

use std::io::Cursor;
use std::mem;

use bytes::Bytes;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use super::mask::apply_mask;
use super::{parse_close, Decoded, WsError, MAX_CONTROL_PAYLOAD};

/// Longest possible frame header: 2 + 8 (length) + 4 (mask) bytes.
const MAX_HEADER: usize = 14;

/// The type of the data message being assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageKind {
    /// A text message (validated as UTF-8).
    Text,
    /// A binary message.
    Binary,
}

/// What the frame whose payload is being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    /// A text/binary/continuation frame; `fin` ends the message.
    Data {
        /// The FIN bit.
        fin: bool,
    },
    /// A ping frame.
    Ping,
    /// A pong frame.
    Pong,
    /// A close frame.
    Close,
}

/// The frame whose header has been read and whose payload is pending.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// What the payload belongs to.
    kind: FrameKind,
    /// The client's masking key.
    mask: [u8; 4],
    /// Payload bytes still to come.
    remaining: u64,
    /// Payload bytes already read, modulo 4 (position in the mask).
    mask_offset: u8,
}

/// Incremental decoder of the frames one client sends on one connection.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Largest accepted message, in bytes.
    max_message_size: usize,
    /// The incomplete frame or message, if any.
    partial: Option<Box<Decoding>>,
    /// Set after an error or a close frame: all further input is ignored.
    finished: bool,
}

impl FrameDecoder {
    /// A decoder accepting messages of at most `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        FrameDecoder {
            max_message_size,
            partial: None,
            finished: false,
        }
    }

    /// Consumes all of `input`, pushes every completed message/control frame to `out` in order, keeps an incomplete tail internally.
    ///
    /// On error, `out` holds everything decoded before the violation and the
    /// returned [`WsError`] carries the close code to send. After an error or
    /// a [`Decoded::Close`], later calls return `Ok(())` and push nothing.
    pub fn decode<E: Extend<Decoded>>(&mut self, input: &[u8], out: &mut E) -> Result<(), WsError> {
        if self.finished {
            return Ok(());
        }
        let mut decoding = self
            .partial
            .take()
            .unwrap_or_else(|| Box::new(Decoding::new(self.max_message_size)));
        let result = decoding.decode(input, out);
        if decoding.is_finished() {
            self.finished = true;
        } else if !decoding.is_idle() {
            self.partial = Some(decoding);
        }
        result
    }

    /// Bytes currently held for incomplete frames/messages (for memory accounting).
    ///
    /// Counts allocated buffer capacity plus partial header bytes; 0 when idle.
    pub fn buffered(&self) -> usize {
        self.partial.as_ref().map_or(0, |d| d.buffered())
    }

    /// Whether nothing is incomplete and more input is still decoded (an idle, usable decoder).
    pub fn is_idle(&self) -> bool {
        self.partial.is_none() && !self.finished
    }

    /// Whether the decoder has seen an error or a close frame and ignores further input.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The configured message size limit.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }
}

/// The decoding state machine; boxed in [`FrameDecoder`] while something is incomplete.
#[derive(Debug)]
struct Decoding {
    /// Largest accepted message (sum of its fragments' payloads), in bytes.
    max_message_size: usize,
    /// Bytes of an incomplete frame header.
    header: [u8; MAX_HEADER],
    /// How many bytes of `header` are in use.
    header_len: u8,
    /// The frame whose payload is being read, if any.
    frame: Option<Frame>,
    /// Type of the open (possibly fragmented) data message, if any.
    message_kind: Option<MessageKind>,
    /// Unmasked payload of the open data message.
    message: Vec<u8>,
    /// Prefix of `message` already known to be valid UTF-8 (text only).
    utf8_checked: usize,
    /// Unmasked payload of the control frame being read.
    control: Vec<u8>,
    /// Set after an error or a close frame: all further input is ignored.
    finished: bool,
}

impl Decoding {
    /// A decoder accepting messages of at most `max_message_size` bytes.
    fn new(max_message_size: usize) -> Self {
        Decoding {
            max_message_size,
            header: [0; MAX_HEADER],
            header_len: 0,
            frame: None,
            message_kind: None,
            message: Vec::new(),
            utf8_checked: 0,
            control: Vec::new(),
            finished: false,
        }
    }

    /// See [`FrameDecoder::decode`]. (Never called once finished: [`FrameDecoder`] drops a
    /// finished state and ignores further input itself.)
    fn decode<E: Extend<Decoded>>(&mut self, input: &[u8], out: &mut E) -> Result<(), WsError> {
        let result = self.decode_inner(input, out);
        if result.is_err() {
            self.finish();
        }
        result
    }

    /// See [`FrameDecoder::buffered`].
    fn buffered(&self) -> usize {
        usize::from(self.header_len) + self.message.capacity() + self.control.capacity()
    }

    /// Whether an error or a close frame was seen.
    fn is_finished(&self) -> bool {
        self.finished
    }

    /// Whether nothing is incomplete: no partial header, frame or message, no buffer.
    fn is_idle(&self) -> bool {
        self.header_len == 0
            && self.frame.is_none()
            && self.message_kind.is_none()
            && self.message.capacity() == 0
            && self.control.capacity() == 0
    }

    /// Drops all pending state and ignores further input.
    fn finish(&mut self) {
        self.finished = true;
        self.header_len = 0;
        self.frame = None;
        self.message_kind = None;
        self.message = Vec::new();
        self.utf8_checked = 0;
        self.control = Vec::new();
    }

    /// The decoding loop: alternates between reading headers and payloads.
    fn decode_inner<E: Extend<Decoded>>(
        &mut self,
        input: &[u8],
        out: &mut E,
    ) -> Result<(), WsError> {
        let mut rest = input;
        loop {
            if let Some(mut frame) = self.frame {
                let n = usize::try_from(frame.remaining).map_or(rest.len(), |r| r.min(rest.len()));
                let (chunk, tail) = rest.split_at_checked(n).unwrap_or((rest, &[]));
                rest = tail;
                self.append_payload(&mut frame, chunk);
                if frame.remaining > 0 {
                    // `rest` is exhausted: wait for more input. Text is checked as it
                    // arrives, so invalid UTF-8 fails fast, before the frame ends.
                    if matches!(frame.kind, FrameKind::Data { .. })
                        && self.message_kind == Some(MessageKind::Text)
                    {
                        self.check_utf8(false)?;
                    }
                    self.frame = Some(frame);
                    return Ok(());
                }
                self.frame = None;
                self.complete_frame(frame.kind, out)?;
                if self.finished {
                    return Ok(());
                }
                continue;
            }
            if rest.is_empty() {
                return Ok(());
            }
            let Some((header, len, used)) = self.read_header(rest)? else {
                return Ok(());
            };
            rest = rest.get(used..).unwrap_or_default();
            self.frame = Some(self.start_frame(&header, len)?);
        }
    }

    /// Reads a frame header from the held partial header plus `input`.
    ///
    /// Returns the header, its payload length and how many bytes of `input`
    /// it used, or `None` after stashing all of `input` (header incomplete).
    fn read_header(&mut self, input: &[u8]) -> Result<Option<(FrameHeader, u64, usize)>, WsError> {
        let held = usize::from(self.header_len);
        if held == 0 {
            // Fast path: parse straight from the caller's slice.
            let mut cursor = Cursor::new(input);
            return match FrameHeader::parse(&mut cursor) {
                Ok(Some((header, len))) => Ok(Some((header, len, cursor_pos(&cursor)))),
                Ok(None) => {
                    self.stash_header(0, input)?;
                    Ok(None)
                }
                Err(_) => Err(WsError::protocol("reserved opcode")),
            };
        }
        let take = (MAX_HEADER - held).min(input.len());
        let total = self.stash_header(held, input.get(..take).unwrap_or_default())?;
        let mut cursor = Cursor::new(self.header.get(..total).unwrap_or_default());
        match FrameHeader::parse(&mut cursor) {
            Ok(Some((header, len))) => {
                let used = cursor_pos(&cursor).saturating_sub(held);
                self.header_len = 0;
                Ok(Some((header, len, used)))
            }
            Ok(None) if total < MAX_HEADER => Ok(None),
            Ok(None) => Err(WsError::protocol("invalid frame header")),
            Err(_) => Err(WsError::protocol("reserved opcode")),
        }
    }

    /// Appends `bytes` to the held partial header at `held`; returns the new length.
    fn stash_header(&mut self, held: usize, bytes: &[u8]) -> Result<usize, WsError> {
        let total = held + bytes.len();
        let slot = self
            .header
            .get_mut(held..total)
            .ok_or(WsError::protocol("invalid frame header"))?;
        slot.copy_from_slice(bytes);
        self.header_len =
            u8::try_from(total).map_err(|_| WsError::protocol("invalid frame header"))?;
        Ok(total)
    }

    /// Validates a parsed header against the connection state and starts its frame.
    fn start_frame(&mut self, header: &FrameHeader, len: u64) -> Result<Frame, WsError> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(WsError::protocol("reserved bits set"));
        }
        let Some(mask) = header.mask else {
            return Err(WsError::protocol("unmasked client frame"));
        };
        if len > i64::MAX as u64 {
            return Err(WsError::protocol("invalid payload length"));
        }
        let kind = match header.opcode {
            OpCode::Control(control) => {
                if !header.is_final {
                    return Err(WsError::protocol("fragmented control frame"));
                }
                if len > MAX_CONTROL_PAYLOAD as u64 {
                    return Err(WsError::protocol("control frame payload too long"));
                }
                match control {
                    Control::Close => FrameKind::Close,
                    Control::Ping => FrameKind::Ping,
                    Control::Pong => FrameKind::Pong,
                    Control::Reserved(_) => return Err(WsError::protocol("reserved opcode")),
                }
            }
            OpCode::Data(data) => {
                let starts = match data {
                    Data::Continue if self.message_kind.is_none() => {
                        return Err(WsError::protocol("continuation without a started message"))
                    }
                    Data::Continue => None,
                    Data::Text | Data::Binary if self.message_kind.is_some() => {
                        return Err(WsError::protocol("new message inside a fragmented message"))
                    }
                    Data::Text => Some(MessageKind::Text),
                    Data::Binary => Some(MessageKind::Binary),
                    Data::Reserved(_) => return Err(WsError::protocol("reserved opcode")),
                };
                let total = (self.message.len() as u64).saturating_add(len);
                if total > self.max_message_size as u64 {
                    return Err(WsError::too_big("message too big"));
                }
                if starts.is_some() {
                    self.message_kind = starts;
                }
                FrameKind::Data {
                    fin: header.is_final,
                }
            }
        };
        Ok(Frame {
            kind,
            mask,
            remaining: len,
            mask_offset: 0,
        })
    }

    /// Unmasks `chunk` (a piece of `frame`'s payload) into the destination buffer.
    ///
    /// Growth doubles the buffer (amortized O(1) per byte) but never beyond
    /// what can still arrive: the frame's end when it ends the message (so a
    /// message fed in pieces ends up sized exactly), else `max_message_size`.
    fn append_payload(&mut self, frame: &mut Frame, chunk: &[u8]) {
        let (dest, ends_message) = match frame.kind {
            FrameKind::Data { fin } => (&mut self.message, fin),
            FrameKind::Ping | FrameKind::Pong | FrameKind::Close => (&mut self.control, true),
        };
        let needed = dest.len().saturating_add(chunk.len());
        if dest.capacity() < needed {
            let remaining = usize::try_from(frame.remaining).unwrap_or(usize::MAX);
            let limit = if ends_message {
                dest.len().saturating_add(remaining)
            } else {
                self.max_message_size
            };
            let target = dest.capacity().saturating_mul(2).min(limit).max(needed);
            dest.reserve_exact(target - dest.len());
        }
        let start = dest.len();
        dest.extend_from_slice(chunk);
        if let Some(fresh) = dest.get_mut(start..) {
            apply_mask(fresh, frame.mask, usize::from(frame.mask_offset));
        }
        // Only the position modulo 4 matters; truncating the length is fine.
        frame.mask_offset = (frame.mask_offset.wrapping_add(chunk.len() as u8)) % 4;
        frame.remaining = frame.remaining.saturating_sub(chunk.len() as u64);
    }

    /// Handles a frame whose payload is complete.
    fn complete_frame<E: Extend<Decoded>>(
        &mut self,
        kind: FrameKind,
        out: &mut E,
    ) -> Result<(), WsError> {
        match kind {
            FrameKind::Data { fin } => {
                if self.message_kind == Some(MessageKind::Text) {
                    self.check_utf8(fin)?;
                }
                if fin {
                    let payload = Bytes::from(mem::take(&mut self.message));
                    self.utf8_checked = 0;
                    out.extend(Some(match self.message_kind.take() {
                        Some(MessageKind::Text) => Decoded::Text(payload),
                        Some(MessageKind::Binary) | None => Decoded::Binary(payload),
                    }));
                }
            }
            FrameKind::Ping => out.extend(Some(Decoded::Ping(Bytes::from(mem::take(
                &mut self.control,
            ))))),
            FrameKind::Pong => out.extend(Some(Decoded::Pong(Bytes::from(mem::take(
                &mut self.control,
            ))))),
            FrameKind::Close => {
                let closed = parse_close(&self.control)?;
                out.extend(Some(closed));
                self.finish();
            }
        }
        Ok(())
    }

    /// Validates the not-yet-checked part of a text message.
    ///
    /// For a non-final fragment, an incomplete code point at the end is
    /// allowed (it is rechecked with the next fragment); anything else invalid
    /// is a 1007 error right away.
    fn check_utf8(&mut self, fin: bool) -> Result<(), WsError> {
        const INVALID: WsError = WsError::invalid_payload("text message is not valid UTF-8");
        let unchecked = self.message.get(self.utf8_checked..).ok_or(INVALID)?;
        match std::str::from_utf8(unchecked) {
            Ok(_) => self.utf8_checked = self.message.len(),
            Err(e) if fin || e.error_len().is_some() => return Err(INVALID),
            Err(e) => self.utf8_checked += e.valid_up_to(),
        }
        Ok(())
    }
}

/// The position of a cursor over a header-sized slice, as `usize`.
fn cursor_pos(cursor: &Cursor<&[u8]>) -> usize {
    usize::try_from(cursor.position()).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked single frame (`mask` all zeros keeps the payload readable).
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 126);
        let mut v = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        v.extend_from_slice(payload);
        v
    }

    fn assert_idle(d: &FrameDecoder) {
        assert_eq!(d.buffered(), 0);
        assert!(
            d.partial.is_none(),
            "an idle decoder holds no partial state"
        );
    }

    #[test]
    fn an_idle_decoder_is_small() {
        assert!(std::mem::size_of::<FrameDecoder>() <= 24);
    }

    #[test]
    fn idle_decoder_holds_no_heap_after_messages() {
        let mut d = FrameDecoder::new(1 << 20);
        assert_idle(&d);
        let mut out = Vec::new();
        let mut bytes = frame(0x81, b"hello");
        bytes.extend(frame(0x89, b"p"));
        bytes.extend(frame(0x82, &[7; 100]));
        d.decode(&bytes, &mut out).expect("valid");
        assert_eq!(out.len(), 3);
        assert_idle(&d);

        // Byte-at-a-time: partial state uses heap, released when complete.
        let big = vec![1u8; 10_000];
        let mut stream = vec![0x82, 0xFE, 0x27, 0x10, 0, 0, 0, 0];
        stream.extend_from_slice(&big);
        for (i, b) in stream.iter().enumerate() {
            d.decode(std::slice::from_ref(b), &mut out).expect("valid");
            if i > 8 && i + 1 < stream.len() {
                assert!(d.buffered() > 0);
            }
        }
        assert_eq!(out.last(), Some(&Decoded::Binary(Bytes::from(big))));
        assert_idle(&d);
    }

    #[test]
    fn partial_header_is_inline_only() {
        let mut d = FrameDecoder::new(100);
        let mut out = Vec::new();
        d.decode(&[0x81, 0x85, 1], &mut out).expect("valid");
        assert_eq!(d.buffered(), 3);
        assert_eq!(d.partial.as_ref().map(|p| p.message.capacity()), Some(0));
        assert!(out.is_empty());
    }

    #[test]
    fn error_releases_buffers() {
        let mut d = FrameDecoder::new(100);
        let mut out = Vec::new();
        d.decode(&[0x01, 0x83, 0, 0, 0, 0, b'a', b'b', b'c'], &mut out)
            .expect("valid fragment");
        assert!(d.buffered() > 0);
        let err = d.decode(&[0x81, 0x80, 0, 0, 0, 0], &mut out);
        assert_eq!(err.map_err(|e| e.code), Err(1002));
        assert_idle(&d);
        assert!(d.is_finished());
    }
}
