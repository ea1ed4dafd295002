//! Pusher channel names: their kinds, their validation, and the Hubbub room that carries
//! each app's channel.
//!
//! A channel `C` of app `A` travels in the room [`room_name`]`(A, C)`: the reserved prefix
//! [`hub_core::ids::RESERVED_ROOM_PREFIX`] (a control byte that Hubbub's JSON protocol and
//! producer API refuse in room names), `pusher:`, the app id, `:` and the channel name. So
//! apps never see each other's channels, and `/ws` clients can neither join nor publish to a
//! Pusher channel: the two protocols share the rooms, registry and buses, never a room.

use hub_core::ids::{RoomName, RESERVED_ROOM_PREFIX};

/// The longest channel name Pusher accepts.
pub const MAX_CHANNEL_LEN: usize = 164;

/// The prefix of the channel a signed-in user receives server-to-user events on.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// What a channel is, from its name's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// Anyone may subscribe.
    Public,
    /// `private-`: a subscription needs an auth signature.
    Private,
    /// `presence-`: a signed subscription with member data; members are listed.
    Presence,
    /// `private-encrypted-`: signed; the payloads are end-to-end encrypted and only relayed.
    PrivateEncrypted,
    /// `#server-to-user-{id}`: the events a backend sends to a signed-in user.
    ServerToUser,
}

/// A channel's kind and whether it is a `cache-` channel (its last event is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// The kind.
    pub kind: ChannelKind,
    /// Whether the name has the `cache-` marker (`cache-`, `private-cache-`,
    /// `presence-cache-`, `private-encrypted-cache-`).
    pub cache: bool,
}

impl Channel {
    /// Whether subscribing needs an auth signature.
    pub fn needs_auth(self) -> bool {
        !matches!(self.kind, ChannelKind::Public | ChannelKind::ServerToUser)
    }

    /// Whether clients may send `client-*` events on it (when the app enables them).
    pub fn allows_client_events(self) -> bool {
        matches!(
            self.kind,
            ChannelKind::Private | ChannelKind::Presence | ChannelKind::PrivateEncrypted
        )
    }
}

/// Why a channel name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// Empty or longer than [`MAX_CHANNEL_LEN`].
    #[error("channel names are 1 to 164 characters long")]
    Length,
    /// A character outside `A-Z a-z 0-9 _ - = @ , . ;`.
    #[error("channel names may only hold A-Z a-z 0-9 _ - = @ , . ;")]
    Character,
}

/// Checks a channel name as Pusher does: 1 to 164 characters of `A-Z a-z 0-9 _ - = @ , . ;`
/// (and `#server-to-user-` followed by such characters), and says what kind it is.
pub fn parse_channel(name: &str) -> Result<Channel, ChannelNameError> {
    if name.is_empty() || name.len() > MAX_CHANNEL_LEN {
        return Err(ChannelNameError::Length);
    }
    let (body, server_to_user) = match name.strip_prefix(SERVER_TO_USER_PREFIX) {
        Some(user) => (user, true),
        None => (name, false),
    };
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b);
    if body.is_empty() || !body.bytes().all(allowed) {
        return Err(ChannelNameError::Character);
    }
    if server_to_user {
        return Ok(Channel {
            kind: ChannelKind::ServerToUser,
            cache: false,
        });
    }
    let (kind, rest) = if let Some(rest) = name.strip_prefix("private-encrypted-") {
        (ChannelKind::PrivateEncrypted, rest)
    } else if let Some(rest) = name.strip_prefix("private-") {
        (ChannelKind::Private, rest)
    } else if let Some(rest) = name.strip_prefix("presence-") {
        (ChannelKind::Presence, rest)
    } else {
        (ChannelKind::Public, name)
    };
    Ok(Channel {
        kind,
        cache: rest.starts_with("cache-"),
    })
}

/// The room prefix every Pusher channel room starts with.
pub fn room_prefix() -> String {
    format!("{RESERVED_ROOM_PREFIX}pusher:")
}

/// The Hubbub room carrying channel `channel` of the app whose id is `app_id`.
pub fn room_name(app_id: &str, channel: &str) -> RoomName {
    let mut name = String::with_capacity(9 + app_id.len() + channel.len());
    name.push(RESERVED_ROOM_PREFIX);
    name.push_str("pusher:");
    name.push_str(app_id);
    name.push(':');
    name.push_str(channel);
    RoomName::from(name)
}

/// The app id and channel a room carries, or `None` for rooms that are not Pusher channels.
pub fn channel_of(room: &str) -> Option<(&str, &str)> {
    let rest = room
        .strip_prefix(RESERVED_ROOM_PREFIX)?
        .strip_prefix("pusher:")?;
    rest.split_once(':')
}

/// The channel a user signed in as `user_id` receives server-to-user events on.
pub fn server_to_user_channel(user_id: &str) -> String {
    format!("{SERVER_TO_USER_PREFIX}{user_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_prefixes() {
        let kind = |n: &str| parse_channel(n).expect(n);
        assert_eq!(kind("news").kind, ChannelKind::Public);
        assert_eq!(kind("private-a").kind, ChannelKind::Private);
        assert_eq!(kind("presence-a").kind, ChannelKind::Presence);
        assert_eq!(
            kind("private-encrypted-a").kind,
            ChannelKind::PrivateEncrypted
        );
        assert_eq!(kind("#server-to-user-u1").kind, ChannelKind::ServerToUser);
        assert!(kind("cache-a").cache && kind("cache-a").kind == ChannelKind::Public);
        assert!(kind("private-cache-a").cache);
        assert!(kind("presence-cache-a").cache);
        assert!(kind("private-encrypted-cache-a").cache);
        assert!(!kind("cachea").cache && !kind("private-a").cache);
        assert!(kind("private-a").needs_auth() && !kind("a").needs_auth());
        assert!(!kind("a").allows_client_events());
        assert!(kind("presence-a").allows_client_events());
    }

    #[test]
    fn names_are_checked_as_pusher_checks_them() {
        for good in ["a", "A-Z_0.9=@,;", &"x".repeat(164)] {
            assert!(parse_channel(good).is_ok(), "{good}");
        }
        assert_eq!(parse_channel(""), Err(ChannelNameError::Length));
        assert_eq!(
            parse_channel(&"x".repeat(165)),
            Err(ChannelNameError::Length)
        );
        for bad in [
            "a b",
            "a:b",
            "a#",
            "#other",
            "é",
            "a/b",
            "#server-to-user-",
            "a\u{1f}",
        ] {
            assert_eq!(
                parse_channel(bad),
                Err(ChannelNameError::Character),
                "{bad}"
            );
        }
    }

    #[test]
    fn rooms_are_reserved_and_come_apart() {
        let room = room_name("app-1", "private-x");
        assert!(hub_core::ids::is_reserved_room(room.as_str()));
        assert!(room.as_str().starts_with(&room_prefix()));
        assert_eq!(channel_of(room.as_str()), Some(("app-1", "private-x")));
        assert_eq!(channel_of("private-x"), None);
        assert_eq!(channel_of("pusher:a:b"), None);
    }
}
