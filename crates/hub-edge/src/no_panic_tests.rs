//! Every parser in the crate, fed every short string over a hostile alphabet, must return
//! (an error or a value) and never panic.

use crate::api::{parse_api, percent_decode};
use crate::auth::{api_key_ok, bearer_token, JwtVerifier, OriginPolicy};
use crate::pusher_api::{self, Query, SignedRequest};
use crate::stats::redact_credentials;
use crate::units::{parse_duration, parse_size};

const ALPHABET: &[&str] = &[
    "", "0", "9", ".", "-", "%", "é", "s", "ms", "KiB", "{", "}", "\"", ":", "/", "@", "=", " ",
];

/// Every concatenation of up to `depth` alphabet entries.
fn strings(depth: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut layer = vec![String::new()];
    for _ in 0..depth {
        layer = layer
            .iter()
            .flat_map(|s| ALPHABET.iter().map(move |a| format!("{s}{a}")))
            .collect();
        all.extend(layer.iter().cloned());
    }
    all
}

#[test]
fn parsers_never_panic() {
    let verifier = JwtVerifier::new(b"k");
    let policy = OriginPolicy::from_list("https://a.example,*");
    for s in strings(4) {
        let _ = parse_duration(&s);
        let _ = parse_size(&s);
        let _ = percent_decode(&s);
        let _ = redact_credentials(&s);
        let _ = bearer_token(Some(&s));
        let _ = api_key_ok(Some("k"), Some(&s));
        let _ = policy.check(Some(&s), Some(&s));
        let _ = verifier.verify(&format!("{s}.{s}.{s}"), 0);
        let _ = parse_api("GET", &format!("/api/online/{s}"), b"");
        let _ = parse_api("POST", "/api/emit", s.as_bytes());
        let query = Query::parse(&s).unwrap_or_default();
        let request = SignedRequest {
            method: "POST",
            path: &s,
            query: &s,
            body: s.as_bytes(),
        };
        let _ = pusher_api::verify(&request, "k", b"secret", 0);
        let _ = pusher_api::split_app(&format!("/apps/{s}"));
        let _ = pusher_api::parse("GET", &format!("channels/{s}/users"), &query, b"", 8);
        let _ = pusher_api::parse("POST", "events", &query, s.as_bytes(), 8);
        let _ = pusher_api::Info::parse(Some(&s));
    }
}
