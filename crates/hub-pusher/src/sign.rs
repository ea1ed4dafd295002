//! Pusher signatures: lower-case hex HMAC-SHA256 under an app's secret, and the checks of
//! the `auth` strings clients bring for private and presence channels and for sign-in.
//!
//! Signatures are compared in constant time ([`hmac::Mac::verify_slice`]); a signature that
//! is not 64 hex digits is refused before any comparison.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::app::App;

type HmacSha256 = Hmac<Sha256>;

/// Why an `auth` string was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The string is not `KEY:HEXSIG`.
    #[error("auth must be KEY:SIGNATURE")]
    Shape,
    /// The key is not the app's key.
    #[error("auth names another app's key")]
    WrongKey,
    /// The signature does not match.
    #[error("invalid signature")]
    BadSignature,
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// The lower-case hex HMAC-SHA256 of `message` under `secret`.
pub fn hmac_hex(secret: &[u8], message: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(message);
    base16ct::lower::encode_string(&m.finalize().into_bytes())
}

/// Whether `hex_signature` is the HMAC-SHA256 of `message` under `secret` (hex digits in
/// either case), compared in constant time.
pub fn verify_hex(secret: &[u8], message: &[u8], hex_signature: &str) -> bool {
    let mut raw = [0u8; 32];
    if hex_signature.len() != 64 {
        return false;
    }
    let Ok(decoded) = base16ct::mixed::decode(hex_signature, &mut raw) else {
        return false;
    };
    let mut m = mac(secret);
    m.update(message);
    m.verify_slice(decoded).is_ok()
}

/// The text a channel auth signs: `socket_id:channel`, then `:channel_data` for presence.
pub fn channel_auth_message(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// The text a user sign-in signs: `socket_id::user::user_data`.
pub fn signin_message(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// The `auth` string an app's backend hands a client for `message` (`KEY:HEXSIG`), as the
/// Pusher server SDKs compute it.
pub fn auth_string(app: &App, message: &str) -> String {
    format!(
        "{}:{}",
        app.key,
        hmac_hex(app.secret.as_bytes(), message.as_bytes())
    )
}

fn check(app: &App, message: &str, auth: &str) -> Result<(), AuthError> {
    let (key, signature) = auth.split_once(':').ok_or(AuthError::Shape)?;
    if key != app.key {
        return Err(AuthError::WrongKey);
    }
    if verify_hex(app.secret.as_bytes(), message.as_bytes(), signature) {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

/// Checks a `pusher:subscribe` `auth` (`KEY:HEXSIG` over `socket_id:channel[:channel_data]`).
pub fn check_channel_auth(
    app: &App,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> Result<(), AuthError> {
    check(
        app,
        &channel_auth_message(socket_id, channel, channel_data),
        auth,
    )
}

/// Checks a `pusher:signin` `auth` (`KEY:HEXSIG` over `socket_id::user::user_data`).
pub fn check_signin_auth(
    app: &App,
    socket_id: &str,
    user_data: &str,
    auth: &str,
) -> Result<(), AuthError> {
    check(app, &signin_message(socket_id, user_data), auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App::new("1", "278d425bdf160c739803", "7ad3773142a6692b25b8").expect("valid")
    }

    #[test]
    fn matches_pushers_documented_example() {
        // Pusher's authentication docs: key 278d425bdf160c739803, secret
        // 7ad3773142a6692b25b8, socket 1234.1234, channel private-foobar.
        let sig = hmac_hex(b"7ad3773142a6692b25b8", b"1234.1234:private-foobar");
        assert_eq!(
            sig,
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        let auth = format!("278d425bdf160c739803:{sig}");
        assert_eq!(
            check_channel_auth(&app(), "1234.1234", "private-foobar", None, &auth),
            Ok(())
        );
        let upper = format!("278d425bdf160c739803:{}", sig.to_uppercase());
        assert_eq!(
            check_channel_auth(&app(), "1234.1234", "private-foobar", None, &upper),
            Ok(())
        );
    }

    #[test]
    fn refuses_what_it_should() {
        let app = app();
        let good = auth_string(&app, &channel_auth_message("1.2", "presence-x", Some("{}")));
        assert_eq!(
            check_channel_auth(&app, "1.2", "presence-x", Some("{}"), &good),
            Ok(())
        );
        let bad = |socket: &str, data: Option<&str>, auth: &str| {
            check_channel_auth(&app, socket, "presence-x", data, auth)
        };
        assert_eq!(bad("1.3", Some("{}"), &good), Err(AuthError::BadSignature));
        assert_eq!(bad("1.2", None, &good), Err(AuthError::BadSignature));
        assert_eq!(bad("1.2", Some("{ }"), &good), Err(AuthError::BadSignature));
        let other_key = good.replacen("278d", "xxxx", 1);
        assert_eq!(bad("1.2", Some("{}"), &other_key), Err(AuthError::WrongKey));
        assert_eq!(bad("1.2", Some("{}"), "nocolon"), Err(AuthError::Shape));
        let short = &good[..good.len() - 2];
        assert_eq!(bad("1.2", Some("{}"), short), Err(AuthError::BadSignature));
        let not_hex = format!("{}zz", short);
        assert_eq!(
            bad("1.2", Some("{}"), &not_hex),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            bad("1.2", Some("{}"), "278d425bdf160c739803:ü"),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn signin_signs_socket_user_and_data() {
        let app = app();
        let data = r#"{"id":"u1"}"#;
        let auth = auth_string(&app, &signin_message("5.6", data));
        assert_eq!(check_signin_auth(&app, "5.6", data, &auth), Ok(()));
        assert_eq!(
            check_signin_auth(&app, "5.7", data, &auth),
            Err(AuthError::BadSignature)
        );
        assert_eq!(signin_message("5.6", "d"), "5.6::user::d");
    }
}
