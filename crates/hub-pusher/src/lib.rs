//! Sans-IO pieces of the Pusher Channels protocol (version 7) for Hubbub.
//!
//! - [`app`]: the apps a node serves (`--pusher-app ID:KEY:SECRET`), looked up by key and id;
//! - [`sign`]: HMAC-SHA256 signatures and the checks of channel and sign-in `auth` strings;
//! - [`channel`]: channel kinds, name validation, and the Hubbub room carrying a channel;
//! - [`frame`]: the frames a Pusher client receives, encoded once per fan-out;
//! - [`message`]: the messages a Pusher client sends, parsed without panicking;
//! - [`session`]: the protocol of a node's Pusher connections, above its shards.
//!
//! Nothing here does I/O, reads a clock or spawns: the node feeds it and acts on its answers.

pub mod app;
pub mod channel;
pub mod frame;
pub mod message;
pub mod session;
pub mod sign;

pub use app::{App, AppError, Apps};
pub use channel::{channel_of, parse_channel, room_name, Channel, ChannelKind};
pub use session::Sessions;
pub use sign::{check_channel_auth, check_signin_auth, hmac_hex, AuthError};
