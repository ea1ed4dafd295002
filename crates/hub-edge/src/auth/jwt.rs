//! JSON Web Tokens (RFC 7519) for client connections, verified with the `jsonwebtoken` crate.
//!
//! Invariants:
//! - Each key accepts only its own family of algorithms: an HMAC secret HS256/384/512, an RSA
//!   key RS256/384/512, an EC key ES256/384, an Ed25519 key EdDSA. `alg: none`, an unknown
//!   `alg`, and a token signed with another family (algorithm confusion, e.g. HS256 keyed with
//!   an RSA public key) are refused before any claim is read.
//! - `exp` is required and `nbf` checked, both with [`LEEWAY_SECS`] of clock skew allowed.
//! - Errors never carry the token or the key.

use std::fmt;
use std::sync::{Arc, RwLock};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
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

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Why a token was refused. Messages never include the token or the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was given.
    #[error("missing token")]
    Missing,
    /// The token is not three base64url parts with JSON header and payload.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is missing, unknown, or not one the configured keys accept.
    #[error("unsupported token algorithm")]
    BadAlgorithm,
    /// The signature does not match (or no configured key has the token's `kid`).
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

/// One verification key and the algorithms it accepts.
#[derive(Clone)]
struct VerifyKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// Keys loaded from a JWKS document, replaced as a whole when the document is fetched again.
#[derive(Clone, Default)]
pub struct JwksKeys(Arc<RwLock<Vec<VerifyKey>>>);

impl fmt::Debug for JwksKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwksKeys")
    }
}

impl JwksKeys {
    /// An empty key set (every token is refused until [`JwksKeys::replace`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the keys with those of a JWKS document (`{"keys":[...]}`); returns how many
    /// were loaded. Symmetric (`oct`) keys and keys that do not parse are skipped; a document
    /// with no usable key is an error and leaves the old keys in place.
    pub fn replace(&self, document: &str) -> Result<usize, String> {
        let set: JwkSet =
            serde_json::from_str(document).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let family: Vec<Algorithm> = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => RSA_ALGORITHMS.to_vec(),
                AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                    EllipticCurve::P256 => vec![Algorithm::ES256],
                    EllipticCurve::P384 => vec![Algorithm::ES384],
                    _ => continue,
                },
                AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                    vec![Algorithm::EdDSA]
                }
                _ => continue,
            };
            // A key that names its algorithm accepts only that one.
            let algorithms = match &jwk.common.key_algorithm {
                Some(named) => match format!("{named:?}").parse::<Algorithm>() {
                    Ok(alg) if family.contains(&alg) => vec![alg],
                    _ => continue,
                },
                None => family,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            keys.push(VerifyKey {
                kid: jwk.common.key_id.clone(),
                key,
                algorithms,
            });
        }
        if keys.is_empty() {
            return Err("the JWKS document has no usable RSA, EC or Ed25519 key".into());
        }
        let count = keys.len();
        if let Ok(mut current) = self.0.write() {
            *current = keys;
        }
        Ok(count)
    }

    fn snapshot(&self) -> Vec<VerifyKey> {
        self.0.read().map(|k| k.clone()).unwrap_or_default()
    }
}

const HMAC_ALGORITHMS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];

#[derive(Clone)]
enum Keys {
    Fixed(Arc<[VerifyKey]>),
    Jwks(JwksKeys),
}

/// Verifies client tokens with an HMAC secret, a public key, or the keys of a JWKS document.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Keys,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("key", &"<redacted>")
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier for tokens signed with the HMAC `secret` (HS256, HS384 or HS512).
    pub fn new(secret: &[u8]) -> Self {
        Self::fixed(VerifyKey {
            kid: None,
            key: DecodingKey::from_secret(secret),
            algorithms: HMAC_ALGORITHMS.to_vec(),
        })
    }

    /// A verifier for tokens signed with the private half of a PEM public key: RSA (RS256,
    /// RS384, RS512), EC P-256 / P-384 (ES256, ES384) or Ed25519 (EdDSA).
    pub fn from_public_key_pem(pem: &[u8]) -> Result<Self, String> {
        let (key, algorithms) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            (key, RSA_ALGORITHMS.to_vec())
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            (key, vec![Algorithm::ES256, Algorithm::ES384])
        } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            (key, vec![Algorithm::EdDSA])
        } else {
            return Err("not a PEM RSA, EC or Ed25519 public key".into());
        };
        Ok(Self::fixed(VerifyKey {
            kid: None,
            key,
            algorithms,
        }))
    }

    /// A verifier using the keys of a JWKS document, which `keys` may replace at any time.
    pub fn from_jwks(keys: JwksKeys) -> Self {
        Self {
            keys: Keys::Jwks(keys),
        }
    }

    fn fixed(key: VerifyKey) -> Self {
        Self {
            keys: Keys::Fixed(Arc::from(vec![key])),
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
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        check_header(&decode_object(header)?)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::BadAlgorithm)?;
        let jwks;
        let keys: &[VerifyKey] = match &self.keys {
            Keys::Fixed(keys) => keys,
            Keys::Jwks(set) => {
                jwks = set.snapshot();
                &jwks
            }
        };
        let mut candidates = keys
            .iter()
            .filter(|k| k.algorithms.contains(&header.alg))
            .peekable();
        if candidates.peek().is_none() {
            return Err(AuthError::BadAlgorithm);
        }
        let mut validation = Validation::new(header.alg);
        // Time claims are checked below against the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        for candidate in candidates {
            if header.kid.is_some() && candidate.kid.is_some() && header.kid != candidate.kid {
                continue;
            }
            validation.algorithms = candidate.algorithms.clone();
            match jsonwebtoken::decode::<Map<String, Value>>(token, &candidate.key, &validation) {
                Ok(data) => return claims(&data.claims, now_unix_secs),
                Err(e) => match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature
                    | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                    | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
                    | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                    | jsonwebtoken::errors::ErrorKind::InvalidEddsaKey
                    | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_) => continue,
                    _ => return Err(AuthError::Malformed),
                },
            }
        }
        Err(AuthError::BadSignature)
    }
}

/// Decodes one base64url part holding a JSON object.
fn decode_object(part: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = B64.decode(part).map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

fn check_header(header: &Map<String, Value>) -> Result<(), AuthError> {
    if header.get("alg").and_then(Value::as_str).is_none() {
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
    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = numeric_date(payload, "nbf", true)? {
        if now.saturating_add(LEEWAY_SECS) < nbf {
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
    fn whitespace_around_a_token_is_tolerated() {
        let t = token(r#"{"sub":"alice","exp":1700000100}"#);
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
    fn hmac_keys_accept_hs256_384_512_only() {
        let claims = r#"{"sub":"alice","exp":1700000100}"#;
        for alg in [
            jsonwebtoken::Algorithm::HS256,
            jsonwebtoken::Algorithm::HS384,
            jsonwebtoken::Algorithm::HS512,
        ] {
            let claims: Value = serde_json::from_str(claims).expect("json");
            let t = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(alg),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(SECRET),
            )
            .expect("signs");
            assert_eq!(verify(&t).map(|c| c.sub), Ok("alice".into()), "{alg:?}");
        }
    }

    #[test]
    fn only_hmac_algorithms_are_accepted_with_a_secret() {
        let claims = r#"{"sub":"alice","exp":1700000100}"#;
        let none = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            B64.encode(claims.as_bytes())
        );
        assert_eq!(verify(&none), Err(AuthError::BadAlgorithm));
        for header in [
            r#"{"alg":"hs256"}"#,
            r#"{"alg":"ES256"}"#,
            r#"{"alg":"EdDSA"}"#,
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
    fn time_claims_are_enforced_with_leeway() {
        let at = |offset: i64| (NOW as i64 + offset).to_string();
        let exp = |e: String| verify(&token(&format!(r#"{{"sub":"a","exp":{e}}}"#)));
        assert_eq!(exp(at(-(LEEWAY_SECS as i64))), Err(AuthError::Expired));
        assert_eq!(exp("1600000000".into()), Err(AuthError::Expired));
        assert_eq!(exp("-5".into()), Err(AuthError::Expired));
        assert!(
            exp(at(-(LEEWAY_SECS as i64) + 1)).is_ok(),
            "within the leeway"
        );
        assert!(exp(at(1)).is_ok());
        assert!(exp("1e300".into()).is_ok());
        let nbf = |n: String| {
            verify(&token(&format!(
                r#"{{"sub":"a","exp":1800000000,"nbf":{n}}}"#
            )))
        };
        assert_eq!(nbf(at(LEEWAY_SECS as i64 + 1)), Err(AuthError::NotYetValid));
        assert_eq!(
            nbf(format!("{}.5", NOW + LEEWAY_SECS)),
            Err(AuthError::NotYetValid)
        );
        assert!(nbf(at(LEEWAY_SECS as i64)).is_ok(), "within the leeway");
        assert!(nbf(at(0)).is_ok());
    }

    #[test]
    fn jwks_documents_without_usable_keys_keep_the_old_keys() {
        let keys = JwksKeys::new();
        let v = JwtVerifier::from_jwks(keys.clone());
        assert_eq!(
            v.verify(&token(r#"{"sub":"a","exp":1800000000}"#), NOW),
            Err(AuthError::BadAlgorithm),
            "no keys yet"
        );
        assert!(keys.replace("not json").is_err());
        // A symmetric key in a JWKS document is never used: it would let anyone who can read
        // the document sign tokens.
        let oct = format!(
            r#"{{"keys":[{{"kty":"oct","k":"{}","kid":"s"}}]}}"#,
            B64.encode(SECRET)
        );
        assert!(keys.replace(&oct).is_err());
        assert_eq!(
            v.verify(&token(r#"{"sub":"a","exp":1800000000}"#), NOW),
            Err(AuthError::BadAlgorithm)
        );
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
