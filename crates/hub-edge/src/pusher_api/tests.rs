use super::answer::{batch_body, channel_body, channels_body, users_body};
use super::request::{allowed_method, valid_socket_id, MAX_BATCH_EVENTS, MAX_EVENT_CHANNELS};
use super::*;
use serde_json::{json, Value};

const MAX: usize = 1000;

fn q(raw: &str) -> Query {
    Query::parse(raw).expect("query")
}

fn post(rest: &str, body: &Value) -> Result<PusherRequest, crate::ApiError> {
    parse("POST", rest, &q(""), body.to_string().as_bytes(), MAX)
}

fn get(rest: &str, query: &str) -> Result<PusherRequest, crate::ApiError> {
    parse("GET", rest, &q(query), b"", MAX)
}

fn status(r: Result<PusherRequest, crate::ApiError>) -> u16 {
    r.expect_err("refused").status
}

#[test]
fn app_paths_split() {
    assert_eq!(split_app("/apps/a1/events"), Some(("a1", "events")));
    assert_eq!(
        split_app("/apps/a1/channels/x/users"),
        Some(("a1", "channels/x/users"))
    );
    assert_eq!(split_app("/apps/a1"), Some(("a1", "")));
    assert_eq!(split_app("/apps/"), None);
    assert_eq!(split_app("/api/publish"), None);
    assert!(is_pusher_path("/apps/x/events"));
    assert!(!is_pusher_path("/app/key"));
    assert_eq!(allowed_method("events"), Some("POST"));
    assert_eq!(allowed_method("channels/x"), Some("GET"));
    assert_eq!(allowed_method("nope"), None);
}

#[test]
fn events_as_the_sdk_sends_them() {
    let body = json!({"name":"ev","data":"{\"a\":1}","channels":["c1","c2"],"socket_id":"123.456","info":"subscription_count"});
    assert_eq!(
        post("events", &body).expect("events"),
        PusherRequest::Trigger(Trigger {
            name: "ev".into(),
            data: "{\"a\":1}".into(),
            channels: vec!["c1".into(), "c2".into()],
            socket_id: Some("123.456".into()),
            info: Info {
                user_count: false,
                subscription_count: true
            },
        })
    );
    let one = json!({"name":"ev","data":"x","channel":"c1"});
    let PusherRequest::Trigger(t) = post("events", &one).expect("channel") else {
        panic!("not a trigger")
    };
    assert_eq!(t.channels, vec!["c1".to_owned()]);
    assert_eq!(t.socket_id, None);
}

#[test]
fn bad_events_get_400_or_413() {
    let cases = [
        json!({"data":"x","channel":"c"}),
        json!({"name":"","data":"x","channel":"c"}),
        json!({"name":"e".repeat(201),"data":"x","channel":"c"}),
        json!({"name":"pusher:subscribe","data":"x","channel":"c"}),
        json!({"name":"e","channel":"c"}),
        json!({"name":"e","data":{"a":1},"channel":"c"}),
        json!({"name":"e","data":"x"}),
        json!({"name":"e","data":"x","channels":[]}),
        json!({"name":"e","data":"x","channel":"c","channels":["c"]}),
        json!({"name":"e","data":"x","channel":"c","socket_id":"abc"}),
        json!({"name":"e","data":"x","channel":"c","info":"everything"}),
        json!({"name":"e","data":"x","channels":vec!["c"; MAX_EVENT_CHANNELS + 1]}),
        json!(["not", "an", "object"]),
        json!({"name":"e","data":"x","channel":"bad channel!"}),
        json!({"name":"e","data":"x","channels":["ok", "c".repeat(165)]}),
    ];
    for body in cases {
        assert_eq!(status(post("events", &body)), 400, "{body}");
    }
    let big = json!({"name":"e","data":"x".repeat(MAX + 1),"channel":"c"});
    let err = post("events", &big).expect_err("413");
    assert_eq!(err.status, 413);
    assert!(
        err.message.contains("--max-message-size"),
        "{}",
        err.message
    );
    let limit = json!({"name":"e","data":"x".repeat(MAX),"channels":vec!["c"; MAX_EVENT_CHANNELS]});
    assert!(post("events", &limit).is_ok());
    assert_eq!(
        parse("POST", "events", &q(""), b"{nope", MAX)
            .expect_err("bad json")
            .status,
        400
    );
}

#[test]
fn batches() {
    let body = json!({"batch":[
        {"name":"a","data":"1","channel":"c1"},
        {"name":"b","data":"2","channel":"presence-c2","socket_id":"1.2","info":"user_count"}
    ]});
    let PusherRequest::Batch(events) = post("batch_events", &body).expect("batch") else {
        panic!("not a batch")
    };
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].channels, vec!["presence-c2".to_owned()]);
    assert!(events[1].info.user_count);
    for bad in [
        json!({}),
        json!({"batch":[]}),
        json!({"batch":[{"name":"a","data":"1","channels":["c"]}]}),
        json!({"batch":vec![json!({"name":"a","data":"1","channel":"c"}); MAX_BATCH_EVENTS + 1]}),
    ] {
        assert_eq!(status(post("batch_events", &bad)), 400, "{bad}");
    }
}

#[test]
fn channel_queries() {
    assert_eq!(
        get("channels", "filter_by_prefix=presence-&info=user_count").expect("list"),
        PusherRequest::Channels {
            prefix: Some("presence-".into()),
            info: Info {
                user_count: true,
                subscription_count: false
            }
        }
    );
    assert_eq!(
        get("channels", "").expect("all"),
        PusherRequest::Channels {
            prefix: None,
            info: Info::default()
        }
    );
    // user_count is for presence channels only.
    assert_eq!(status(get("channels", "info=user_count")), 400);
    assert_eq!(
        status(get("channels", "filter_by_prefix=private-&info=user_count")),
        400
    );
    assert_eq!(
        get("channels/presence-a", "info=user_count,subscription_count").expect("one"),
        PusherRequest::Channel {
            channel: "presence-a".into(),
            info: Info {
                user_count: true,
                subscription_count: true
            }
        }
    );
    assert_eq!(status(get("channels/public-a", "info=user_count")), 400);
    assert_eq!(
        get("channels/presence-a/users", "").expect("users"),
        PusherRequest::Users {
            channel: "presence-a".into()
        }
    );
    assert_eq!(status(get("channels/private-a/users", "")), 400);
    assert_eq!(status(get("channels/%zz", "")), 400);
    assert_eq!(status(get("channels/a%20b", "")), 400);
    assert_eq!(status(get("channels/presence-a%20b/users", "")), 400);
}

#[test]
fn terminate_routes_and_methods() {
    assert_eq!(
        parse(
            "POST",
            "users/user%201/terminate_connections",
            &q(""),
            b"{}",
            MAX
        )
        .expect("terminate"),
        PusherRequest::TerminateUser {
            user: "user 1".into()
        }
    );
    assert_eq!(status(get("users/u/terminate_connections", "")), 405);
    assert_eq!(status(post("channels", &json!({}))), 405);
    for rest in [
        "",
        "event",
        "channels/",
        "channels/a/b",
        "users//terminate_connections",
    ] {
        assert_eq!(status(get(rest, "")), 404, "{rest}");
    }
}

#[test]
fn socket_ids() {
    for ok in ["1.2", "123456.7890", "0.0"] {
        assert!(valid_socket_id(ok), "{ok}");
    }
    for bad in [
        "",
        "1",
        "1.",
        ".1",
        "a.1",
        "1.2.3",
        "-1.2",
        &"1".repeat(21).replace('1', "9"),
    ] {
        assert!(!valid_socket_id(bad), "{bad}");
    }
}

#[test]
fn answer_bodies() {
    let presence = ChannelInfo {
        user_count: Some(2),
        subscription_count: Some(3),
    };
    let body: Value = serde_json::from_str(&channels_body([
        ("a", ChannelInfo::default()),
        ("presence-b", presence),
    ]))
    .expect("json");
    assert_eq!(
        body,
        json!({"channels":{"a":{},"presence-b":{"user_count":2,"subscription_count":3}}})
    );
    let body: Value =
        serde_json::from_str(&channel_body(false, ChannelInfo::default())).expect("json");
    assert_eq!(body, json!({"occupied":false}));
    let body: Value = serde_json::from_str(&channel_body(true, presence)).expect("json");
    assert_eq!(
        body,
        json!({"occupied":true,"user_count":2,"subscription_count":3})
    );
    let body: Value = serde_json::from_str(&users_body(["u1", "u\"2"])).expect("json");
    assert_eq!(body, json!({"users":[{"id":"u1"},{"id":"u\"2"}]}));
    let body: Value =
        serde_json::from_str(&batch_body(&[presence, ChannelInfo::default()])).expect("json");
    assert_eq!(
        body,
        json!({"batch":[{"user_count":2,"subscription_count":3},{}]})
    );
}
