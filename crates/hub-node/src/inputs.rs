//! What a client's decoded frames mean to its shard: the inputs fed to the core, the same
//! whether the connection runs as its own task (`conn.rs`) or as a socket of the shard task
//! (`sockets.rs`).

use hub_core::shard::Input;
use hub_core::ConnId;
use hub_wire::ws::{Decoded, WsError};

/// The input for one decoded message, and whether it ends reading: after a close frame the
/// shard answers with its own and closes, and nothing more the client sends counts.
pub(crate) fn message_input(conn: ConnId, message: Decoded) -> (Input, bool) {
    let input = match message {
        Decoded::Text(data) => Input::Message {
            conn,
            data,
            binary: false,
        },
        Decoded::Binary(data) => Input::Message {
            conn,
            data,
            binary: true,
        },
        Decoded::Ping(payload) => Input::Ping { conn, payload },
        Decoded::Pong(_) => Input::Activity { conn },
        Decoded::Close { code, .. } => {
            // Echo the client's code when it is one we may send back, else 1000.
            let code = code
                .filter(|c| matches!(c, 1000..=1003 | 1007..=1011 | 3000..=4999))
                .unwrap_or(1000);
            let close = Input::Close {
                conn,
                code,
                reason: String::new(),
            };
            return (close, true);
        }
    };
    (input, false)
}

/// The input for a protocol error: close with the code and reason the decoder named.
pub(crate) fn protocol_close(conn: ConnId, e: &WsError) -> Input {
    Input::Close {
        conn,
        code: e.code,
        reason: e.reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hub_core::ShardId;

    const CONN: ConnId = ConnId {
        shard: ShardId(0),
        slot: 1,
        gen: 2,
    };

    #[test]
    fn a_close_frame_ends_reading_and_echoes_only_codes_that_may_be_sent() {
        for (sent, echoed) in [(Some(1001), 1001), (Some(4001), 4001), (Some(1005), 1000)] {
            let (input, ends) = message_input(
                CONN,
                Decoded::Close {
                    code: sent,
                    reason: String::new(),
                },
            );
            assert!(ends);
            assert!(matches!(input, Input::Close { code, .. } if code == echoed));
        }
        let (input, ends) = message_input(
            CONN,
            Decoded::Close {
                code: None,
                reason: String::new(),
            },
        );
        assert!(ends);
        assert!(matches!(input, Input::Close { code: 1000, .. }));
    }

    #[test]
    fn data_and_pongs_do_not_end_reading() {
        let (input, ends) = message_input(CONN, Decoded::Binary(Bytes::from_static(b"x")));
        assert!(!ends);
        assert!(matches!(input, Input::Message { binary: true, .. }));
        let (input, ends) = message_input(CONN, Decoded::Pong(Bytes::new()));
        assert!(!ends);
        assert!(matches!(input, Input::Activity { .. }));
    }
}
