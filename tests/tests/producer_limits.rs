//! Producer `data` is capped: larger than `--max-message-size`, or than a send queue can hold,
//! it is refused (HTTP 413, gRPC RESOURCE_EXHAUSTED) and delivered to nobody, and the
//! connections it would have reached stay open.

use std::time::Duration;

use hub_proto::pb;
use hubbub_tests::{free_port, post, Client, TestNode};
use serde_json::json;

/// A JSON string of `len` bytes (quotes included).
fn data_of(len: usize) -> String {
    format!("\"{}\"", "x".repeat(len - 2))
}

#[tokio::test]
async fn http_data_over_the_limit_is_413_and_reaches_nobody() {
    let node = TestNode::start(&["--max-message-size", "64KiB"]);
    let (mut member, _) = Client::connect(&node.ws_url("/ws/big?id=m")).await;
    let big = data_of(100 * 1024);
    let r = post(
        node.addr,
        "/api/publish",
        &json!({"room":"big","data":serde_json::from_str::<serde_json::Value>(&big).expect("json")}).to_string(),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("65536")),
        "{}",
        r.body
    );
    // The largest accepted payload goes through, and the member was never closed.
    let fits = data_of(64 * 1024);
    let r = post(
        node.addr,
        "/api/broadcast",
        &format!(r#"{{"data":{fits}}}"#),
    )
    .await;
    assert_eq!(r.json(), json!({"delivered":1}), "{}", r.body);
    let got = member.recv().await;
    assert_eq!(got["type"], "message");
    assert_eq!(got["data"].as_str().map(str::len), Some(64 * 1024 - 2));
}

#[tokio::test]
async fn grpc_data_beyond_a_send_queue_is_resource_exhausted_and_closes_nobody() {
    // A message limit above the send queue: the queue bound (1 MiB) is what caps producer
    // data, so a 1.1 MiB broadcast can no longer close every connection with 4008.
    let grpc = format!("127.0.0.1:{}", free_port());
    let node = TestNode::start(&[
        "--grpc-listen",
        &grpc,
        "--max-message-size",
        "8MiB",
        "--send-queue-bytes",
        "1MiB",
    ]);
    let (mut a, _) = Client::connect(&node.ws_url("/ws?id=a")).await;
    let (mut b, _) = Client::connect(&node.ws_url("/ws/room?id=b")).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the gRPC listener");
    let mut producer = pb::producer_client::ProducerClient::new(channel)
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);
    let huge = data_of(1024 * 1024 + 100 * 1024);
    let refused = producer
        .broadcast(pb::BroadcastRequest { data: huge.clone() })
        .await
        .expect_err("a 1.1 MiB broadcast is refused");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
    let refused = producer
        .publish(pb::PublishRequest {
            room: "room".into(),
            data: data_of(4 * 1024 * 1024),
        })
        .await
        .expect_err("a 4 MiB publish is refused");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
    // Nothing reached anyone, nobody was closed, and delivery goes on.
    assert!(
        a.silent_for(Duration::from_millis(300)).await,
        "a got something"
    );
    let answer = producer
        .broadcast(pb::BroadcastRequest {
            data: "\"after\"".into(),
        })
        .await
        .expect("a small broadcast")
        .into_inner();
    assert_eq!(answer.delivered, 2);
    assert_eq!(a.recv().await["data"], "after");
    assert_eq!(b.recv().await["data"], "after");
}
