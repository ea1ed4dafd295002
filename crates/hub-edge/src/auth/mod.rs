//! Who may connect and who may call the producer API.
//!
//! - [`JwtVerifier`]: client tokens (`?token=` or `Authorization: Bearer`): HMAC, RSA, EC or
//!   Ed25519 keys, or a JWKS document ([`JwksKeys`]).
//! - [`OriginPolicy`]: the `Origin` check of the WebSocket upgrade.
//! - [`api_key_ok`]: the producer API key (`Authorization: Bearer KEY`).

mod jwt;
mod origin;

use sha2::{Digest, Sha256};

pub use jwt::{sign_hs256, AuthError, Claims, JwksKeys, JwtVerifier, LEEWAY_SECS, MAX_TOKEN_LEN};
pub use origin::OriginPolicy;

/// The credentials of an `Authorization: Bearer X` header value (scheme case-insensitive).
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares two secrets in time independent of where they differ and of their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Comparing fixed-size digests hides the lengths and the position of the first difference.
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Whether a producer API call is authorised: always when no key is configured, otherwise
/// only with `Authorization: Bearer KEY`. An empty configured key matches nothing.
pub fn api_key_ok(expected: Option<&str>, authorization: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    match bearer_token(authorization) {
        Some(given) => {
            !expected.is_empty() && constant_time_eq(expected.as_bytes(), given.as_bytes())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_extracted() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(bearer_token(Some("abc")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn api_key_is_required_when_configured() {
        assert!(api_key_ok(None, None));
        assert!(api_key_ok(None, Some("Bearer anything")));
        assert!(api_key_ok(Some("k3y"), Some("Bearer k3y")));
        assert!(api_key_ok(Some("k3y"), Some("bearer k3y")));
        assert!(!api_key_ok(Some("k3y"), None));
        assert!(!api_key_ok(Some("k3y"), Some("k3y")));
        assert!(!api_key_ok(Some("k3y"), Some("Bearer k3")));
        assert!(!api_key_ok(Some("k3y"), Some("Bearer k3yy")));
        assert!(!api_key_ok(Some("k3y"), Some("Bearer K3Y")));
        assert!(!api_key_ok(Some("k3y"), Some("Basic k3y")));
        assert!(!api_key_ok(Some(""), Some("Bearer ")));
        assert!(!api_key_ok(Some(""), None));
    }

    #[test]
    fn constant_time_eq_compares_content() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
