use super::*;

// Produced by the `pusher` Node SDK 5.3.4 (createSignedQueryString, Date.now stubbed to
// 1765150000000) for app key "key-1", secret "secret-0123456789abcdef".
const KEY: &str = "key-1";
const SECRET: &[u8] = b"secret-0123456789abcdef";
const NOW: u64 = 1_765_150_000;
const POST_BODY: &str = r#"{"name":"ev","data":"{\"a\":1}","channels":["chat"]}"#;
const POST_QUERY: &str = "auth_key=key-1&auth_timestamp=1765150000&auth_version=1.0&body_md5=520b22b735e3b6bd8e97dccf4a752ecf&auth_signature=e98e3584a8f7030318ccb8f15ac260848dd6f90d64f23bf5e3f4acdeaaab1413";
const GET_QUERY: &str = "auth_key=key-1&auth_timestamp=1765150000&auth_version=1.0&filter_by_prefix=presence-&info=user_count&auth_signature=0e168e638372048a5a52353b90761787ff595393896cfe5cf2efecb70d481a8a";

fn post(query: &str, body: &str) -> Result<Query, SignatureError> {
    let request = SignedRequest {
        method: "POST",
        path: "/apps/app-1/events",
        query,
        body: body.as_bytes(),
    };
    verify(&request, KEY, SECRET, NOW)
}

fn get_at(query: &str, now: u64) -> Result<Query, SignatureError> {
    let request = SignedRequest {
        method: "GET",
        path: "/apps/app-1/channels",
        query,
        body: b"",
    };
    verify(&request, KEY, SECRET, now)
}

/// The SDK's query with `param`'s value replaced.
fn with(query: &str, param: &str, value: &str) -> String {
    query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == param => format!("{k}={value}"),
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn the_sdks_signatures_verify() {
    let q = post(POST_QUERY, POST_BODY).expect("POST signed by the SDK");
    assert_eq!(q.get("auth_key"), Some("key-1"));
    let q = get_at(GET_QUERY, NOW).expect("GET signed by the SDK");
    assert_eq!(q.get("filter_by_prefix"), Some("presence-"));
    assert_eq!(q.get("info"), Some("user_count"));
    assert_eq!(
        body_md5(POST_BODY.as_bytes()),
        "520b22b735e3b6bd8e97dccf4a752ecf"
    );
}

#[test]
fn parameter_order_and_key_case_do_not_matter() {
    let mut parts: Vec<&str> = GET_QUERY.split('&').collect();
    parts.reverse();
    assert!(get_at(&parts.join("&"), NOW).is_ok());
    let upper = GET_QUERY.replace("filter_by_prefix", "FILTER_BY_PREFIX");
    assert!(get_at(&upper, NOW).is_ok());
    // Percent-encoded values are decoded before signing.
    let encoded = GET_QUERY.replace("presence-", "presence%2D");
    assert!(get_at(&encoded, NOW).is_ok());
}

#[test]
fn the_timestamp_window_is_600_seconds_either_way() {
    assert!(get_at(GET_QUERY, NOW + 600).is_ok());
    assert!(get_at(GET_QUERY, NOW - 600).is_ok());
    for now in [NOW + 601, NOW - 601, 0, u64::MAX] {
        assert_eq!(
            get_at(GET_QUERY, now),
            Err(SignatureError::Timestamp { now })
        );
    }
    let not_a_number = with(GET_QUERY, "auth_timestamp", "soon");
    assert_eq!(
        get_at(&not_a_number, NOW),
        Err(SignatureError::Timestamp { now: NOW })
    );
}

#[test]
fn a_changed_request_is_refused() {
    // Another body than the one signed: body_md5 no longer matches.
    let other = POST_BODY.replace("chat", "chaT");
    assert_eq!(post(POST_QUERY, &other), Err(SignatureError::BodyMd5));
    // A body without body_md5.
    let no_md5 = POST_QUERY.replace("body_md5=520b22b735e3b6bd8e97dccf4a752ecf&", "");
    assert_eq!(post(&no_md5, POST_BODY), Err(SignatureError::BodyMd5));
    // A parameter added after signing.
    let added = format!("{GET_QUERY}&info2=x");
    assert!(matches!(
        get_at(&added, NOW),
        Err(SignatureError::Signature { .. })
    ));
    // Another path or method.
    let request = SignedRequest {
        method: "GET",
        path: "/apps/app-2/channels",
        query: GET_QUERY,
        body: b"",
    };
    let err = verify(&request, KEY, SECRET, NOW).expect_err("other path");
    assert_eq!(
        err,
        SignatureError::Signature {
            string_to_sign: "GET\n/apps/app-2/channels\nauth_key=key-1&auth_timestamp=1765150000&auth_version=1.0&filter_by_prefix=presence-&info=user_count".into()
        }
    );
    assert_eq!(err.status(), 401);
    let request = SignedRequest {
        method: "POST",
        ..request
    };
    assert!(verify(&request, KEY, SECRET, NOW).is_err());
}

#[test]
fn wrong_keys_secrets_and_signatures_are_refused() {
    let request = SignedRequest {
        method: "GET",
        path: "/apps/app-1/channels",
        query: GET_QUERY,
        body: b"",
    };
    assert_eq!(
        verify(&request, "key-2", SECRET, NOW),
        Err(SignatureError::WrongKey)
    );
    assert!(matches!(
        verify(&request, KEY, b"another-secret-0123", NOW),
        Err(SignatureError::Signature { .. })
    ));
    for bad in ["", "zz", "0e16", &"0".repeat(64)] {
        let query = with(GET_QUERY, "auth_signature", bad);
        assert!(
            matches!(get_at(&query, NOW), Err(SignatureError::Signature { .. })),
            "{bad:?}"
        );
    }
    // Upper-case hex is the same digest.
    let upper = with(
        GET_QUERY,
        "auth_signature",
        &"0e168e638372048a5a52353b90761787ff595393896cfe5cf2efecb70d481a8a".to_uppercase(),
    );
    assert!(get_at(&upper, NOW).is_ok());
}

#[test]
fn missing_duplicate_and_versioned_parameters() {
    for (param, name) in [
        ("auth_key", "auth_key"),
        ("auth_timestamp", "auth_timestamp"),
        ("auth_version", "auth_version"),
        ("auth_signature", "auth_signature"),
    ] {
        let query: Vec<&str> = GET_QUERY
            .split('&')
            .filter(|kv| !kv.starts_with(&format!("{param}=")))
            .collect();
        assert_eq!(
            get_at(&query.join("&"), NOW),
            Err(SignatureError::Missing(name))
        );
    }
    let twice = format!("{GET_QUERY}&Info=x");
    let err = get_at(&twice, NOW).expect_err("duplicate");
    assert_eq!(err, SignatureError::Duplicate("info".into()));
    assert_eq!(err.status(), 400);
    let v2 = with(GET_QUERY, "auth_version", "2.0");
    assert_eq!(get_at(&v2, NOW), Err(SignatureError::Version));
    assert_eq!(get_at("", NOW), Err(SignatureError::Missing("auth_key")));
    assert_eq!(
        get_at("%zz&&==&auth_key", NOW),
        Err(SignatureError::WrongKey)
    );
}
