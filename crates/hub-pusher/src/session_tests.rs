use super::*;
use hub_core::frame::payload_of;
use hub_core::ShardId;
use serde_json::Value;

fn conn(slot: u32) -> ConnId {
    ConnId {
        shard: ShardId(0),
        slot,
        gen: 0,
    }
}

fn sessions(client_events: bool) -> Sessions {
    let apps = Apps::from_specs(&["1:key:0123456789abcdef"], client_events).expect("valid");
    Sessions::new(apps)
}

fn drain(s: &mut Sessions) -> Vec<Input> {
    std::iter::from_fn(|| s.poll_input()).collect()
}

/// The JSON of the frames sent to connections, with `data` decoded as pusher-js does.
fn sent(inputs: &[Input]) -> Vec<Value> {
    inputs
        .iter()
        .filter_map(|i| match i {
            Input::Deliver { frame, .. } | Input::Publish { frame, .. } => {
                let mut v: Value = serde_json::from_slice(&payload_of(frame)).expect("json");
                if let Some(Value::String(s)) = v.get("data").cloned() {
                    if let Ok(inner) = serde_json::from_str::<Value>(&s) {
                        v["data"] = inner;
                    }
                }
                Some(v)
            }
            _ => None,
        })
        .collect()
}

fn open(s: &mut Sessions, slot: u32, socket: &str) {
    s.opened(conn(slot), ClientId::from(socket), "1");
    let out = sent(&drain(s));
    assert_eq!(out[0]["event"], "pusher:connection_established");
    assert_eq!(out[0]["data"]["socket_id"], socket);
}

fn text(s: &mut Sessions, slot: u32, json: &str) -> Vec<Input> {
    s.message(conn(slot), json.as_bytes());
    drain(s)
}

fn subscribe_presence(s: &mut Sessions, slot: u32, socket: &str, user: &str) -> Vec<Input> {
    let app = s.apps().by_id("1").expect("app").clone();
    let data = format!(r#"{{"user_id":"{user}","user_info":{{"n":"{user}"}}}}"#);
    let auth = sign::auth_string(
        &app,
        &sign::channel_auth_message(socket, "presence-room", Some(&data)),
    );
    let msg = serde_json::json!({"event":"pusher:subscribe","data":{"channel":"presence-room","auth":auth,"channel_data":data}});
    text(s, slot, &msg.to_string())
}

#[test]
fn unknown_apps_are_refused_with_4001() {
    let mut s = sessions(false);
    s.opened(conn(0), ClientId::from("1.1"), "nope");
    let out = drain(&mut s);
    assert_eq!(sent(&out)[0]["data"]["code"], 4001);
    assert!(matches!(out[1], Input::Disconnect { code: 4001, .. }));
    assert!(!s.contains(conn(0)));
}

#[test]
fn public_and_private_subscriptions() {
    let mut s = sessions(false);
    open(&mut s, 0, "1.1");
    let out = text(
        &mut s,
        0,
        r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#,
    );
    assert!(
        matches!(&out[0], Input::JoinAs { room, user: None, .. } if *room == room_name("1", "news"))
    );
    assert_eq!(
        sent(&out)[0]["event"],
        "pusher_internal:subscription_succeeded"
    );
    let bad = r#"{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"key:00"}}"#;
    let out = sent(&text(&mut s, 0, bad));
    assert_eq!(out[0]["event"], "pusher:subscription_error");
    assert_eq!(out[0]["data"]["type"], "AuthError");
    assert_eq!(out[0]["data"]["status"], 401);
    let app = s.apps().by_id("1").expect("app").clone();
    let auth = sign::auth_string(&app, "1.1:private-a");
    let good = format!(
        r#"{{"event":"pusher:subscribe","data":{{"channel":"private-a","auth":"{auth}"}}}}"#
    );
    let out = text(&mut s, 0, &good);
    assert!(matches!(out[0], Input::JoinAs { .. }));
    let out = sent(&text(&mut s, 0, r#"{"event":"pusher:ping","data":{}}"#));
    assert_eq!(out[0]["event"], "pusher:pong");
    let out = sent(&text(&mut s, 0, "{not json"));
    assert_eq!(out[0]["event"], "pusher:error");
}

#[test]
fn presence_members_are_counted_per_user() {
    let mut s = sessions(false);
    open(&mut s, 0, "1.1");
    open(&mut s, 1, "1.2");
    open(&mut s, 2, "1.3");
    let inputs = subscribe_presence(&mut s, 0, "1.1", "alice");
    assert!(matches!(
        &inputs[0],
        Input::JoinAs { user: Some(u), info: Some(i), .. } if u.as_str() == "alice" && &**i == r#"{"n":"alice"}"#
    ));
    let out = sent(&inputs);
    assert_eq!(out[0]["event"], "pusher_internal:member_added");
    assert_eq!(out[1]["data"]["presence"]["count"], 1);
    // A second connection of alice adds no member.
    let out = sent(&subscribe_presence(&mut s, 1, "1.2", "alice"));
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0]["data"]["presence"]["ids"],
        serde_json::json!(["alice"])
    );
    let out = sent(&subscribe_presence(&mut s, 2, "1.3", "bob"));
    assert_eq!(out[0]["data"]["user_id"], "bob");
    assert_eq!(out[1]["data"]["presence"]["count"], 2);
    assert_eq!(out[1]["data"]["presence"]["hash"]["alice"]["n"], "alice");
    s.closed(conn(0));
    assert!(sent(&drain(&mut s)).is_empty(), "alice is still there");
    s.closed(conn(1));
    let out = sent(&drain(&mut s));
    assert_eq!(out[0]["event"], "pusher_internal:member_removed");
    assert_eq!(out[0]["data"]["user_id"], "alice");
}

#[test]
fn client_events_need_the_app_setting_and_skip_the_sender() {
    let event = r#"{"event":"client-typing","channel":"presence-room","data":{"x":1}}"#;
    let mut off = sessions(false);
    open(&mut off, 0, "1.1");
    subscribe_presence(&mut off, 0, "1.1", "alice");
    let out = sent(&text(&mut off, 0, event));
    assert_eq!(out[0]["data"]["code"], 4301);
    let mut on = sessions(true);
    open(&mut on, 0, "1.1");
    let out = text(&mut on, 0, event);
    assert_eq!(sent(&out)[0]["data"]["code"], 4301, "not subscribed");
    subscribe_presence(&mut on, 0, "1.1", "alice");
    let out = text(&mut on, 0, event);
    match &out[..] {
        [Input::Publish {
            target: Target::RoomExcept { except, .. },
            ..
        }] => assert_eq!(except.as_str(), "1.1"),
        other => panic!("{other:?}"),
    }
    let v = sent(&out);
    assert_eq!(v[0]["user_id"], "alice");
    assert_eq!(v[0]["data"]["x"], 1);
}

#[test]
fn signin_sets_the_user_and_opens_the_server_to_user_channel() {
    let mut s = sessions(false);
    open(&mut s, 0, "1.1");
    let sub = r##"{"event":"pusher:subscribe","data":{"channel":"#server-to-user-u1"}}"##;
    assert_eq!(sent(&text(&mut s, 0, sub))[0]["data"]["status"], 403);
    let app = s.apps().by_id("1").expect("app").clone();
    let data = r#"{"id":"u1"}"#;
    let auth = sign::auth_string(&app, &sign::signin_message("1.1", data));
    let msg = serde_json::json!({"event":"pusher:signin","data":{"auth":auth,"user_data":data}});
    let out = text(&mut s, 0, &msg.to_string());
    assert!(matches!(&out[0], Input::SetUser { user, .. } if user.as_str() == "u1"));
    assert_eq!(sent(&out)[0]["event"], "pusher:signin_success");
    assert!(matches!(text(&mut s, 0, sub)[0], Input::JoinAs { .. }));
    let bad =
        serde_json::json!({"event":"pusher:signin","data":{"auth":"key:00","user_data":data}});
    let out = text(&mut s, 0, &bad.to_string());
    assert!(matches!(out[1], Input::Disconnect { code: 4009, .. }));
}
