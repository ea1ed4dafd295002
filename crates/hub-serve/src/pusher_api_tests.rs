use super::*;
use hub_edge::pusher_api::signature::body_md5;
use hub_wire::http::{parse_request, Parsed};

const NOW: u64 = 1_765_150_000;
const SECRET: &str = "secret-0123456789abcdef";

fn api() -> PusherApi {
    let mut disabled = App::new("off", "off-key", SECRET).expect("app");
    disabled.enabled = false;
    let apps = Apps::new(vec![App::new("a1", "k1", SECRET).expect("app"), disabled]).expect("apps");
    PusherApi::new(apps, 100)
}

/// A request signed as the SDK signs it, with `key` and `SECRET`, at `NOW`.
fn signed(method: &str, path: &str, params: &str, body: &str, key: &str) -> RequestHead {
    let mut query: Vec<String> = vec![
        format!("auth_key={key}"),
        format!("auth_timestamp={NOW}"),
        "auth_version=1.0".into(),
    ];
    if !body.is_empty() {
        query.push(format!("body_md5={}", body_md5(body.as_bytes())));
    }
    query.extend(
        params
            .split('&')
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
    );
    query.sort();
    let query = query.join("&");
    let sig = hub_pusher::sign::hmac_hex(
        SECRET.as_bytes(),
        format!("{method}\n{path}\n{query}").as_bytes(),
    );
    let raw = format!(
        "{method} {path}?{query}&auth_signature={sig} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    match parse_request(raw.as_bytes(), 1 << 16) {
        Ok(Parsed::Complete { head, .. }) => head,
        other => panic!("bad request {other:?}"),
    }
}

fn status(r: Result<PusherCall, Response>) -> u16 {
    r.expect_err("refused").status
}

#[test]
fn a_signed_call_is_parsed_for_its_app() {
    let body = r#"{"name":"ev","data":"{}","channels":["a","b"],"socket_id":"1.2"}"#;
    let head = signed("POST", "/apps/a1/events", "", body, "k1");
    let call = api().call(&head, body.as_bytes(), NOW).expect("call");
    assert_eq!(call.app.id, "a1");
    let PusherRequest::Trigger(trigger) = call.request else {
        panic!("not a trigger")
    };
    let commands = deliveries(&call.app, &trigger);
    assert_eq!(commands.len(), 2);
    let Command::Deliver { target, frame } = &commands[0] else {
        panic!("not a delivery")
    };
    assert_eq!(
        target,
        &Target::RoomExcept {
            room: hub_pusher::room_name("a1", "a"),
            except: ClientId::from("1.2"),
        }
    );
    // The frame is a WebSocket text frame of Pusher's event JSON, data as a JSON string.
    let text = std::str::from_utf8(&frame[2..]).expect("utf8");
    assert_eq!(text, r#"{"event":"ev","channel":"a","data":"{}"}"#);
}

#[test]
fn unknown_apps_bad_signatures_and_disabled_apps_are_refused() {
    let api = api();
    let get = |path: &str, key: &str, now: u64| {
        let head = signed("GET", path, "", "", key);
        api.call(&head, b"", now)
    };
    assert!(get("/apps/a1/channels", "k1", NOW).is_ok());
    assert_eq!(status(get("/apps/nope/channels", "k1", NOW)), 404);
    assert_eq!(status(get("/apps/a1/channels", "k2", NOW)), 401);
    assert_eq!(status(get("/apps/a1/channels", "k1", NOW + 601)), 401);
    assert_eq!(status(get("/apps/off/channels", "off-key", NOW)), 403);
    assert_eq!(status(get("/apps/a1/nothing", "k1", NOW)), 404);
    let wrong_method = api
        .call(&signed("GET", "/apps/a1/events", "", "", "k1"), b"", NOW)
        .expect_err("405");
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method
        .headers
        .contains(&("Allow".to_owned(), "POST".to_owned())));
    // Data over the limit: 413.
    let body = format!(
        r#"{{"name":"e","data":"{}","channel":"a"}}"#,
        "x".repeat(101)
    );
    let head = signed("POST", "/apps/a1/events", "", &body, "k1");
    assert_eq!(status(api.call(&head, body.as_bytes(), NOW)), 413);
    // Errors are JSON.
    let err = get("/apps/nope/channels", "k1", NOW).expect_err("404");
    let v: serde_json::Value = serde_json::from_slice(&err.body).expect("json");
    assert!(v["error"].as_str().is_some_and(|m| m.contains("nope")));
}

#[test]
fn data_reaches_pusher_clients_as_the_string_sent() {
    let app = App::new("a1", "k1", SECRET).expect("app");
    let trigger = Trigger {
        name: "n".into(),
        data: "say \"hi\"\n".into(),
        channels: vec!["c".into()],
        socket_id: None,
        info: Default::default(),
    };
    let commands = deliveries(&app, &trigger);
    let [Command::Deliver { target, frame }] = &commands[..] else {
        panic!("one delivery")
    };
    assert_eq!(target, &Target::Room(hub_pusher::room_name("a1", "c")));
    let text = std::str::from_utf8(&frame[2..]).expect("utf8");
    let v: serde_json::Value = serde_json::from_str(text).expect("json");
    assert_eq!(v["data"], "say \"hi\"\n");
}
