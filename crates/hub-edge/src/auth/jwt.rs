//! HS256 JSON Web Tokens (RFC 7519) for client connections.
//!
//! Only HS256 is accepted: the header's `alg` must be exactly `"HS256"` (so `none` and
//! algorithm-confusion tokens are refused), the signature is checked in constant time before
//! the payload is read, and errors never carry the token or the secret.

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Base64url; encodes without padding, decodes with or without it.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest token looked at; anything longer is malformed (headers are bounded anyway).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token was refused. Messages never include the token or the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was given.
    #[error("missing token")]
    Missing,
    /// The token is not three base64url parts with JSON header and payload.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is missing or not HS256.
    #[error("unsupported token algorithm (only HS256 is accepted)")]
    BadAlgorithm,
    /// The signature does not match.
    #[error("bad token signature")]
    BadSignature,
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// The token's `nbf` has not come yet.
    #[error("token not yet valid")]
    NotYetValid,
    /// A required claim is missing, or a claim has the wrong type or is empty.
    #[error("missing or invalid claim {0:?}")]
    MissingClaim(&'static str),
}

/// The claims Hubbub uses from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: the user id.
    pub sub: String,
    /// `exp`: expiry, in seconds since the Unix epoch.
    pub exp: u64,
    /// `cid`: the client id to use, when the token fixes one.
    pub client_id: Option<String>,
    /// `rooms`: the only rooms the connection may join and publish to, joined on connect;
    /// `None` when absent (every room allowed, none joined).
    pub rooms: Option<Vec<String>>,
}

/// Verifies HS256 tokens signed with one shared secret.
#[derive(Clone)]
pub struct JwtVerifier {
    /// The keyed MAC; `None` only if the MAC refused the key (HMAC accepts any length).
    mac: Option<HmacSha256>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("alg", &"HS256")
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier for tokens signed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: HmacSha256::new_from_slice(secret).ok(),
        }
    }

    /// Verifies `token` at `now_unix_secs` and returns its claims.
    pub fn verify(&self, token: &str, now_unix_secs: u64) -> Result<Claims, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        check_header(&decode_object(header)?)?;
        let signature = B64.decode(signature).map_err(|_| AuthError::Malformed)?;
        let mut mac = self.mac.clone().ok_or(AuthError::BadSignature)?;
        // The signing input is the first two parts exactly as sent.
        let signed = token
            .get(..header.len() + 1 + payload.len())
            .ok_or(AuthError::Malformed)?;
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)?;
        claims(&decode_object(payload)?, now_unix_secs)
    }
}

/// Decodes one base64url part holding a JSON object.
fn decode_object(part: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = B64.decode(part).map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

fn check_header(header: &Map<String, Value>) -> Result<(), AuthError> {
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err(AuthError::BadAlgorithm);
    }
    // RFC 7515 §4.1.11: extensions we do not understand must not be ignored.
    if header.contains_key("crit") {
        return Err(AuthError::Malformed);
    }
    Ok(())
}

/// A NumericDate claim as whole seconds: `Ok(None)` when absent or null. Fractions round
/// down for `exp` and up for `nbf` (`round_up`), both toward refusing; negatives count as 0.
fn numeric_date(
    payload: &Map<String, Value>,
    name: &'static str,
    round_up: bool,
) -> Result<Option<u64>, AuthError> {
    match payload.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            if n.as_i64().is_some() {
                return Ok(Some(0));
            }
            match n.as_f64() {
                // `as` saturates: negatives become 0, huge values u64::MAX.
                Some(f) if f.is_finite() => {
                    Ok(Some(if round_up { f.ceil() } else { f.floor() } as u64))
                }
                _ => Err(AuthError::MissingClaim(name)),
            }
        }
        Some(_) => Err(AuthError::MissingClaim(name)),
    }
}

/// An optional non-empty string claim (`null` counts as absent).
fn optional_string(
    payload: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, AuthError> {
    match payload.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::MissingClaim(name)),
    }
}

fn claims(payload: &Map<String, Value>, now: u64) -> Result<Claims, AuthError> {
    let sub = optional_string(payload, "sub")?.ok_or(AuthError::MissingClaim("sub"))?;
    let exp = numeric_date(payload, "exp", false)?.ok_or(AuthError::MissingClaim("exp"))?;
    if now >= exp {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = numeric_date(payload, "nbf", true)? {
        if now < nbf {
            return Err(AuthError::NotYetValid);
        }
    }
    let client_id = optional_string(payload, "cid")?;
    let rooms = match payload.get("rooms") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|room| match room {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    _ => Err(AuthError::MissingClaim("rooms")),
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(AuthError::MissingClaim("rooms")),
    };
    Ok(Claims {
        sub,
        exp,
        client_id,
        rooms,
    })
}

/// Signs `claims_json` (the payload's JSON text, used as is) as an HS256 token.
pub fn sign_hs256(secret: &[u8], claims_json: &str) -> String {
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = B64.encode(claims_json.as_bytes());
    let input = format!("{header}.{payload}");
    // HMAC accepts keys of any length; if it ever did not, the empty signature never verifies.
    let signature = match HmacSha256::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(input.as_bytes());
            B64.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("{input}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"correct horse battery staple";
    const NOW: u64 = 1_700_000_000;

    fn token(claims: &str) -> String {
        sign_hs256(SECRET, claims)
    }

    fn verify(token: &str) -> Result<Claims, AuthError> {
        JwtVerifier::new(SECRET).verify(token, NOW)
    }

    /// A token with a hand-made header, signed correctly.
    fn with_header(header: &str, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.as_bytes()),
            B64.encode(claims.as_bytes())
        );
        let mut mac = HmacSha256::new_from_slice(SECRET).expect("key");
        mac.update(input.as_bytes());
        format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn valid_token_gives_claims() {
        let c = verify(&token(
            r#"{"sub":"alice","exp":1700000100,"nbf":1699999000,"cid":"tab-1","rooms":["a","b"]}"#,
        ))
        .expect("valid");
        assert_eq!(
            c,
            Claims {
                sub: "alice".into(),
                exp: 1_700_000_100,
                client_id: Some("tab-1".into()),
                rooms: Some(vec!["a".into(), "b".into()]),
            }
        );
        let c = verify(&token(r#"{"sub":"bob","exp":1700000001.9}"#)).expect("valid");
        assert_eq!(c.exp, 1_700_000_001);
        assert_eq!(c.client_id, None);
        assert_eq!(c.rooms, None);
        let c = verify(&token(
            r#"{"sub":"bob","exp":1700000001,"cid":null,"rooms":null}"#,
        ))
        .expect("valid");
        assert_eq!(c.client_id, None);
    }

    #[test]
    fn padding_and_whitespace_are_tolerated() {
        let t = token(r#"{"sub":"alice","exp":1700000100}"#);
        let parts: Vec<&str> = t.split('.').collect();
        let pad = |p: &str| format!("{p}{}", "=".repeat((4 - p.len() % 4) % 4));
        // The signature covers the parts as sent, so only the signature may gain padding.
        let padded = format!("{}.{}.{}", parts[0], parts[1], pad(parts[2]));
        assert!(verify(&padded).is_ok());
        assert!(verify(&format!(" {t}\n")).is_ok());
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let t = token(r#"{"sub":"alice","exp":1700000100}"#);
        let parts: Vec<&str> = t.split('.').collect();
        let forged = B64.encode(br#"{"sub":"admin","exp":1700000100}"#);
        assert_eq!(
            verify(&format!("{}.{forged}.{}", parts[0], parts[2])),
            Err(AuthError::BadSignature)
        );
        let mut sig = B64.decode(parts[2]).expect("sig");
        sig[0] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], B64.encode(&sig));
        assert_eq!(verify(&flipped), Err(AuthError::BadSignature));
        assert_eq!(
            verify(&format!("{}.{}.", parts[0], parts[1])),
            Err(AuthError::BadSignature)
        );
        let other = JwtVerifier::new(b"another secret").verify(&t, NOW);
        assert_eq!(other, Err(AuthError::BadSignature));
    }

    #[test]
    fn only_hs256_is_accepted() {
        let claims = r#"{"sub":"alice","exp":1700000100}"#;
        let none = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            B64.encode(claims.as_bytes())
        );
        assert_eq!(verify(&none), Err(AuthError::BadAlgorithm));
        for header in [
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":null}"#,
            r#"{"alg":["HS256"]}"#,
        ] {
            assert_eq!(
                verify(&with_header(header, claims)),
                Err(AuthError::BadAlgorithm),
                "{header}"
            );
        }
        assert!(verify(&with_header(r#"{"alg":"HS256"}"#, claims)).is_ok());
        assert_eq!(
            verify(&with_header(r#"{"alg":"HS256","crit":["x"]}"#, claims)),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn time_claims_are_enforced() {
        assert_eq!(
            verify(&token(r#"{"sub":"a","exp":1700000000}"#)),
            Err(AuthError::Expired)
        );
        assert_eq!(
            verify(&token(r#"{"sub":"a","exp":1600000000}"#)),
            Err(AuthError::Expired)
        );
        assert_eq!(
            verify(&token(r#"{"sub":"a","exp":-5}"#)),
            Err(AuthError::Expired)
        );
        assert!(verify(&token(r#"{"sub":"a","exp":1700000001}"#)).is_ok());
        assert_eq!(
            verify(&token(r#"{"sub":"a","exp":1800000000,"nbf":1700000001}"#)),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(
            verify(&token(r#"{"sub":"a","exp":1800000000,"nbf":1700000000.5}"#)),
            Err(AuthError::NotYetValid)
        );
        assert!(verify(&token(r#"{"sub":"a","exp":1800000000,"nbf":1700000000}"#)).is_ok());
        assert!(verify(&token(r#"{"sub":"a","exp":1e300}"#)).is_ok());
    }

    #[test]
    fn claims_are_checked() {
        let bad = |claims: &str| verify(&token(claims)).expect_err(claims);
        assert_eq!(bad(r#"{"exp":1800000000}"#), AuthError::MissingClaim("sub"));
        assert_eq!(
            bad(r#"{"sub":"","exp":1800000000}"#),
            AuthError::MissingClaim("sub")
        );
        assert_eq!(
            bad(r#"{"sub":42,"exp":1800000000}"#),
            AuthError::MissingClaim("sub")
        );
        assert_eq!(bad(r#"{"sub":"a"}"#), AuthError::MissingClaim("exp"));
        assert_eq!(
            bad(r#"{"sub":"a","exp":"1800000000"}"#),
            AuthError::MissingClaim("exp")
        );
        assert_eq!(
            bad(r#"{"sub":"a","exp":1800000000,"nbf":"x"}"#),
            AuthError::MissingClaim("nbf")
        );
        assert_eq!(
            bad(r#"{"sub":"a","exp":1800000000,"cid":7}"#),
            AuthError::MissingClaim("cid")
        );
        assert_eq!(
            bad(r#"{"sub":"a","exp":1800000000,"rooms":"lobby"}"#),
            AuthError::MissingClaim("rooms")
        );
        assert_eq!(
            bad(r#"{"sub":"a","exp":1800000000,"rooms":["a",1]}"#),
            AuthError::MissingClaim("rooms")
        );
        assert_eq!(bad("[1,2]"), AuthError::Malformed);
        assert_eq!(bad("not json"), AuthError::Malformed);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert_eq!(verify(""), Err(AuthError::Missing));
        assert_eq!(verify("   "), Err(AuthError::Missing));
        let t = token(r#"{"sub":"a","exp":1800000000}"#);
        let parts: Vec<&str> = t.split('.').collect();
        for bad in [
            "abc".to_owned(),
            "a.b".to_owned(),
            format!("{t}.extra"),
            format!("{}.{}.{}", "!!!", parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], parts[1], "***"),
            format!("{}.{}.{}", B64.encode("not json"), parts[1], parts[2]),
            format!("{}.{}.{}", B64.encode("[]"), parts[1], parts[2]),
            "x".repeat(MAX_TOKEN_LEN + 1),
            "é.é.é".to_owned(),
        ] {
            assert_eq!(verify(&bad), Err(AuthError::Malformed), "{bad:.40}");
        }
        // A payload that is not base64 fails the signature check first (it is signed as sent).
        assert_eq!(
            verify(&format!("{}.{}.{}", parts[0], "%%%", parts[2])),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn secrets_and_tokens_stay_out_of_messages() {
        let v = JwtVerifier::new(b"super-secret-value");
        let debug = format!("{v:?}");
        assert!(!debug.contains("super-secret-value"), "{debug}");
        assert!(debug.contains("redacted"));
        let t = token(r#"{"sub":"alice","exp":1}"#);
        let e = v.verify(&t, NOW).expect_err("wrong secret");
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(&t[..10]), "{text}");
        }
        assert_eq!(
            AuthError::MissingClaim("sub").to_string(),
            r#"missing or invalid claim "sub""#
        );
    }
}
