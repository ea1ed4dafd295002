use super::*;
use serde_json::Value;

fn post(path: &str, body: &str) -> Result<ApiRequest, ApiError> {
    parse_api("POST", path, body.as_bytes())
}

fn status(r: Result<ApiRequest, ApiError>) -> u16 {
    r.expect_err("must fail").status
}

#[test]
fn every_route_parses() {
    assert_eq!(
        post("/api/emit", r#"{"to":"c1","data":{"x":[1,2]}}"#),
        Ok(ApiRequest::Emit {
            to: "c1".into(),
            data: r#"{"x":[1,2]}"#.into()
        })
    );
    assert_eq!(
        post("/api/emit_user", r#"{"user":"u","data":"hi"}"#),
        Ok(ApiRequest::EmitUser {
            user: "u".into(),
            data: r#""hi""#.into()
        })
    );
    assert_eq!(
        post(
            "/api/publish",
            r#" {"room":"lobby","data":5,"extra":true} "#
        ),
        Ok(ApiRequest::Publish {
            room: "lobby".into(),
            data: "5".into()
        })
    );
    assert_eq!(
        post("/api/broadcast", r#"{"data":[]}"#),
        Ok(ApiRequest::Broadcast { data: "[]".into() })
    );
    assert_eq!(
        post("/api/disconnect", r#"{"to":"c\"1"}"#),
        Ok(ApiRequest::Disconnect { to: "c\"1".into() })
    );
    assert_eq!(
        parse_api("GET", "/api/online/c1", b""),
        Ok(ApiRequest::Online {
            client: "c1".into()
        })
    );
}

#[test]
fn null_data_is_kept() {
    assert_eq!(
        post("/api/broadcast", r#"{"data":null}"#),
        Ok(ApiRequest::Broadcast {
            data: "null".into()
        })
    );
    assert_eq!(
        post("/api/emit", r#"{"to":"c1","data":null}"#),
        Ok(ApiRequest::Emit {
            to: "c1".into(),
            data: "null".into()
        })
    );
}

#[test]
fn online_id_is_percent_decoded_and_query_ignored() {
    let online = |path: &str| parse_api("GET", path, b"");
    assert_eq!(
        online("/api/online/a%20b%2Fc%C3%A9?x=1"),
        Ok(ApiRequest::Online {
            client: "a b/cé".into()
        })
    );
    assert_eq!(
        online("/api/online/a+b"),
        Ok(ApiRequest::Online {
            client: "a+b".into()
        })
    );
    assert_eq!(status(online("/api/online/")), 400);
    assert_eq!(status(online("/api/online/%")), 400);
    assert_eq!(status(online("/api/online/%zz")), 400);
    assert_eq!(status(online("/api/online/%ff")), 400);
    assert_eq!(status(online("/api/online/%C3")), 400);
    assert_eq!(status(online("/api/online/%é")), 400);
    assert_eq!(status(online("/api/online/a/b")), 404);
    assert_eq!(status(online("/api/online")), 404);
    assert_eq!(
        post("/api/emit?debug=1", r#"{"to":"c","data":1}"#),
        Ok(ApiRequest::Emit {
            to: "c".into(),
            data: "1".into()
        })
    );
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405() {
    for path in [
        "/api",
        "/api/",
        "/api/nope",
        "/api/emit/",
        "/api/EMIT",
        "/other",
    ] {
        assert_eq!(status(post(path, "{}")), 404, "{path}");
    }
    assert_eq!(status(parse_api("GET", "/api/emit", b"")), 405);
    assert_eq!(status(parse_api("post", "/api/emit", b"{}")), 405);
    assert_eq!(status(parse_api("PUT", "/api/publish", b"{}")), 405);
    assert_eq!(status(parse_api("POST", "/api/online/c1", b"")), 405);
    assert_eq!(status(parse_api("DELETE", "/api/disconnect", b"")), 405);
    let e = parse_api("GET", "/api/broadcast", b"").expect_err("405");
    assert!(e.message.contains("POST"), "{}", e.message);
    assert_eq!(allowed_method("/api/broadcast"), Some("POST"));
    assert_eq!(allowed_method("/api/online/x?y"), Some("GET"));
    assert_eq!(allowed_method("/api/nope"), None);
    assert!(is_api_path("/api"));
    assert!(is_api_path("/api/x?y"));
    assert!(!is_api_path("/apix"));
    assert!(!is_api_path("/ws"));
}

#[test]
fn bad_bodies_are_400_naming_the_field() {
    let msg = |path: &str, body: &str| {
        let e = post(path, body).expect_err(body);
        assert_eq!(e.status, 400, "{body}");
        e.message
    };
    assert!(msg("/api/emit", "").contains("JSON object"));
    assert!(msg("/api/emit", "not json").contains("JSON object"));
    assert!(msg("/api/emit", "[1]").contains("JSON object"));
    assert!(msg("/api/emit", r#"{"to":"a","data":1"#).contains("JSON object"));
    assert!(msg("/api/emit", r#"{"to":"a","to":"b","data":1}"#).contains("JSON object"));
    assert_eq!(msg("/api/emit", r#"{"data":1}"#), r#"missing field "to""#);
    assert_eq!(
        msg("/api/emit", r#"{"to":null,"data":1}"#),
        r#"field "to" must be a string"#
    );
    assert_eq!(
        msg("/api/emit", r#"{"to":7,"data":1}"#),
        r#"field "to" must be a string"#
    );
    assert_eq!(
        msg("/api/emit", r#"{"to":"","data":1}"#),
        r#"field "to" must be 1 to 256 bytes long"#
    );
    assert_eq!(msg("/api/emit", r#"{"to":"a"}"#), r#"missing field "data""#);
    assert!(msg("/api/emit_user", r#"{"data":1}"#).contains(r#""user""#));
    assert!(msg("/api/emit_user", r#"{"user":"","data":1}"#).contains(r#""user""#));
    assert!(msg("/api/publish", r#"{"room":["a"],"data":1}"#).contains(r#""room""#));
    assert!(msg("/api/publish", r#"{"room":"","data":1}"#).contains(r#""room""#));
    assert!(msg("/api/publish", r#"{"room":"a"}"#).contains(r#""data""#));
    assert!(msg("/api/broadcast", "{}").contains(r#""data""#));
    assert!(msg("/api/disconnect", "{}").contains(r#""to""#));
    assert_eq!(
        status(parse_api("POST", "/api/broadcast", b"\xff\xfe")),
        400
    );
}

#[test]
fn oversized_bodies_are_413() {
    let mut big = br#"{"data":""#.to_vec();
    big.resize(MAX_API_BODY + 1, b'a');
    assert_eq!(status(parse_api("POST", "/api/broadcast", &big)), 413);
}

#[test]
fn answer_bodies_are_json() {
    let parse = |s: String| serde_json::from_str::<Value>(&s).expect("json");
    assert_eq!(delivered_body(3), r#"{"delivered":3}"#);
    assert_eq!(delivered_body(0), r#"{"delivered":0}"#);
    assert_eq!(online_body(Some("n1")), r#"{"online":true,"node":"n1"}"#);
    assert_eq!(parse(online_body(Some("n\"1\\")))["node"], "n\"1\\");
    assert_eq!(online_body(None), r#"{"online":false}"#);
    assert_eq!(disconnected_body(true), r#"{"disconnected":true}"#);
    assert_eq!(disconnected_body(false), r#"{"disconnected":false}"#);
    let e = ApiError::bad_request("missing field \"to\"");
    assert_eq!(e.body(), r#"{"error":"missing field \"to\""}"#);
    assert_eq!(parse(e.body())["error"], "missing field \"to\"");
    assert_eq!(ApiError::unauthorized().status, 401);
    assert_eq!(ApiError::not_found().status, 404);
    assert_eq!(ApiError::too_large().status, 413);
    assert_eq!(e.to_string(), "400: missing field \"to\"");
}

#[test]
fn names_longer_than_256_bytes_are_refused() {
    let long = "r".repeat(257);
    let ok = "r".repeat(256);
    let body = |room: &str| format!(r#"{{"room":"{room}","data":1}}"#);
    let e = parse_api("POST", "/api/publish", body(&long).as_bytes()).expect_err("too long");
    assert_eq!(e.status, 400);
    assert!(e.body().contains("1 to 256 bytes"), "{}", e.body());
    assert!(parse_api("POST", "/api/publish", body(&ok).as_bytes()).is_ok());
    for (path, field) in [
        ("/api/emit", "to"),
        ("/api/emit_user", "user"),
        ("/api/disconnect", "to"),
    ] {
        let b = format!(r#"{{"{field}":"{long}","data":1}}"#);
        assert_eq!(
            parse_api("POST", path, b.as_bytes())
                .map_err(|e| e.status)
                .err(),
            Some(400),
            "{path}"
        );
    }
    let e = parse_api("GET", &format!("/api/online/{long}"), b"").expect_err("long id");
    assert_eq!(e.status, 400);
    assert!(serde_json::from_str::<serde_json::Value>(&e.body()).is_ok());
}

#[test]
fn reserved_rooms_are_refused() {
    let body = br#"{"room":"\u001fpusher:app:news","data":1}"#;
    let e = parse_api("POST", "/api/publish", body).expect_err("reserved");
    assert_eq!(e.status, 400);
    assert!(e.body().contains("reserved"), "{}", e.body());
}
