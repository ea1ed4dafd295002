//! Request-head parsing, upgrade checks and response formatting.

use hub_wire::http::{
    parse_request, upgrade_response, websocket_accept, HttpError, Parsed, RequestHead, Response,
    MAX_HEADERS,
};

const LIMIT: usize = 8 * 1024;

fn head(raw: &str) -> RequestHead {
    match parse_request(raw.as_bytes(), LIMIT) {
        Ok(Parsed::Complete { head, .. }) => head,
        other => panic!("expected a complete head, got {other:?}"),
    }
}

const UPGRADE: &str = "GET /ws?room=lobby HTTP/1.1\r\n\
    Host: example.com\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn complete_head_reports_its_length_and_fields() {
    let raw = b"POST /api/send?x=1&y=2 HTTP/1.1\r\nHost: a\r\nX-Mixed-Case:  v a l  \r\nContent-Length: 5\r\n\r\nhello";
    match parse_request(raw, LIMIT) {
        Ok(Parsed::Complete { head, head_len }) => {
            assert_eq!(head_len, raw.len() - 5);
            assert_eq!(&raw[head_len..], b"hello");
            assert_eq!(head.method, "POST");
            assert_eq!(head.path, "/api/send");
            assert_eq!(head.query, "x=1&y=2");
            assert_eq!(head.version, 1);
            assert_eq!(head.headers[1], ("x-mixed-case".into(), "v a l".into()));
            assert_eq!(head.header("X-MIXED-CASE"), Some("v a l"));
            assert_eq!(head.header("missing"), None);
            assert_eq!(head.content_length(), Ok(5));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn path_without_query_and_percent_encoding_is_kept_raw() {
    let h = head("GET /a%20b HTTP/1.1\r\n\r\n");
    assert_eq!(h.path, "/a%20b");
    assert_eq!(h.query, "");
    let h = head("GET /x? HTTP/1.1\r\n\r\n");
    assert_eq!((h.path.as_str(), h.query.as_str()), ("/x", ""));
}

#[test]
fn partial_heads_need_more_bytes() {
    let raw = UPGRADE.as_bytes();
    for cut in 0..raw.len() {
        assert_eq!(
            parse_request(&raw[..cut], LIMIT),
            Ok(Parsed::Partial),
            "cut {cut}"
        );
    }
}

#[test]
fn oversized_heads_are_rejected() {
    let mut raw = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    raw.extend(std::iter::repeat_n(b'a', 200));
    assert_eq!(parse_request(&raw, 100), Err(HttpError::HeadTooLarge));
    assert_eq!(parse_request(&raw, 1000), Ok(Parsed::Partial));
    // A complete head longer than the limit is also too large.
    raw.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse_request(&raw, 100), Err(HttpError::HeadTooLarge));
    assert_eq!(HttpError::HeadTooLarge.status(), 431);
    // A head exactly at the limit is fine.
    let exact = b"GET / HTTP/1.1\r\n\r\n";
    assert!(matches!(
        parse_request(exact, exact.len()),
        Ok(Parsed::Complete { .. })
    ));
}

#[test]
fn malformed_heads_are_400() {
    for raw in [
        &b"\x00\x01garbage\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ] {
        match parse_request(raw, LIMIT) {
            Err(e @ HttpError::Malformed(_)) => assert_eq!(e.status(), 400),
            other => panic!("{raw:?} gave {other:?}"),
        }
    }
}

#[test]
fn too_many_headers_is_431() {
    let mut raw = String::from("GET / HTTP/1.1\r\n");
    for i in 0..MAX_HEADERS {
        raw.push_str(&format!("h{i}: v\r\n"));
    }
    let ok = format!("{raw}\r\n");
    assert!(matches!(
        parse_request(ok.as_bytes(), LIMIT),
        Ok(Parsed::Complete { .. })
    ));
    raw.push_str("one-more: v\r\n\r\n");
    let err = parse_request(raw.as_bytes(), LIMIT);
    assert_eq!(err, Err(HttpError::TooManyHeaders));
    assert_eq!(HttpError::TooManyHeaders.status(), 431);
}

#[test]
fn content_length_rules() {
    let cl = |headers: &str| head(&format!("POST / HTTP/1.1\r\n{headers}\r\n")).content_length();
    assert_eq!(cl(""), Ok(0));
    assert_eq!(cl("Content-Length: 42\r\n"), Ok(42));
    assert_eq!(cl("Content-Length: 7\r\ncontent-length: 7\r\n"), Ok(7));
    assert_eq!(cl("Content-Length: 7, 7\r\n"), Ok(7));
    for bad in [
        "Content-Length: 7\r\nContent-Length: 8\r\n",
        "Content-Length: 7, 8\r\n",
        "Content-Length: abc\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: \r\n",
        "Content-Length: 99999999999999999999999999\r\n",
    ] {
        let err = cl(bad).expect_err(bad);
        assert_eq!(err.status(), 400, "{bad}");
    }
}

#[test]
fn websocket_upgrade_is_recognised() {
    let h = head(UPGRADE);
    assert!(h.is_websocket_upgrade());
    assert_eq!(h.websocket_key(), Some("dGhlIHNhbXBsZSBub25jZQ=="));
    assert_eq!(h.query_param("room").as_deref(), Some("lobby"));
}

#[test]
fn upgrade_accepts_token_lists_and_any_case() {
    let h = head(
        "GET /ws HTTP/1.1\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n\
         sec-websocket-key: abc\r\nsec-websocket-version: 13\r\n\r\n",
    );
    assert!(h.is_websocket_upgrade());
    let h = head(
        "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nConnection: UPGRADE\r\n\
         Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(h.is_websocket_upgrade());
}

#[test]
fn upgrade_requires_every_condition() {
    let broken = [
        UPGRADE.replace("GET", "POST"),
        UPGRADE.replace("HTTP/1.1", "HTTP/1.0"),
        UPGRADE.replace("Upgrade: websocket", "Upgrade: h2c"),
        UPGRADE.replace("Connection: Upgrade", "Connection: keep-alive"),
        UPGRADE.replace("Connection: Upgrade", "Connection: upgraded"),
        UPGRADE.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
        UPGRADE.replace("Sec-WebSocket-Version: 13\r\n", ""),
        UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
        UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", ""),
    ];
    for raw in &broken {
        assert!(!head(raw).is_websocket_upgrade(), "{raw}");
    }
}

#[test]
fn query_params_are_form_decoded() {
    let h = head("GET /q?a=1&name=J%C3%B6rg+M%C3%BCller&empty=&flag&a=2&sp%20ace=x%2By&bad=%zz HTTP/1.1\r\n\r\n");
    assert_eq!(h.query_param("a").as_deref(), Some("1"));
    assert_eq!(h.query_param("name").as_deref(), Some("Jörg Müller"));
    assert_eq!(h.query_param("empty").as_deref(), Some(""));
    assert_eq!(h.query_param("flag").as_deref(), Some(""));
    assert_eq!(h.query_param("sp ace").as_deref(), Some("x+y"));
    assert_eq!(h.query_param("bad").as_deref(), Some("%zz"));
    assert_eq!(h.query_param("missing"), None);
    assert_eq!(head("GET / HTTP/1.1\r\n\r\n").query_param("a"), None);
}

#[test]
fn keep_alive_defaults_by_version() {
    assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive());
    assert!(!head("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keep_alive());
    assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive());
    assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
}

#[test]
fn bearer_tokens() {
    let auth = |v: &str| head(&format!("GET / HTTP/1.1\r\nAuthorization: {v}\r\n\r\n"));
    assert_eq!(auth("Bearer abc.def").bearer_token(), Some("abc.def"));
    assert_eq!(auth("bearer   xyz").bearer_token(), Some("xyz"));
    assert_eq!(auth("BEARER t").bearer_token(), Some("t"));
    assert_eq!(auth("Basic dXNlcjpwYXNz").bearer_token(), None);
    assert_eq!(auth("Bearer").bearer_token(), None);
    assert_eq!(auth("Bearer ").bearer_token(), None);
    assert_eq!(head("GET / HTTP/1.1\r\n\r\n").bearer_token(), None);
}

/// RFC 6455 section 1.3 example (checked independently with SHA-1 + base64).
#[test]
fn rfc6455_accept_key() {
    assert_eq!(
        websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn upgrade_response_bytes() {
    let resp = String::from_utf8(upgrade_response("dGhlIHNhbXBsZSBub25jZQ==")).expect("ascii");
    assert_eq!(
        resp,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
}

#[test]
fn response_formatting() {
    let resp = Response::json(200, r#"{"ok":true}"#).with_header("X-Request-Id", "7");
    assert_eq!(
        String::from_utf8(resp.to_bytes(true)).expect("ascii"),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\
         Connection: keep-alive\r\nX-Request-Id: 7\r\n\r\n{\"ok\":true}"
    );
    let resp = Response::text(404, "nope");
    assert_eq!(
        String::from_utf8(resp.to_bytes(false)).expect("ascii"),
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 4\r\nConnection: close\r\n\r\nnope"
    );
    let html = Response::html(503, b"<p>busy</p>".to_vec());
    assert_eq!(html.content_type, "text/html; charset=utf-8");
    assert!(html
        .to_bytes(false)
        .starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
}

#[test]
fn status_lines_use_standard_reasons() {
    for (code, reason) in [
        (200, "OK"),
        (101, "Switching Protocols"),
        (204, "No Content"),
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (413, "Content Too Large"),
        (429, "Too Many Requests"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (503, "Service Unavailable"),
    ] {
        let bytes = Response::text(code, "").to_bytes(true);
        let line = format!("HTTP/1.1 {code} {reason}\r\n");
        assert!(bytes.starts_with(line.as_bytes()), "{code}");
    }
}

#[test]
fn no_content_has_no_body_or_length() {
    let bytes = Response::text(204, "ignored").to_bytes(true);
    assert_eq!(
        String::from_utf8(bytes).expect("ascii"),
        "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"
    );
}

#[test]
fn header_values_cannot_inject_lines() {
    let bytes = Response::text(200, "")
        .with_header("X-Evil", "a\r\nSet-Cookie: x=1")
        .to_bytes(true);
    let text = String::from_utf8(bytes).expect("ascii");
    assert!(text.contains("X-Evil: a  Set-Cookie: x=1\r\n"));
    assert_eq!(text.matches("\r\n").count(), 6);
}
