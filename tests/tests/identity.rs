//! Client ids that belong to their holder: under JWT an id comes from the token's `cid` or is
//! generated (a `?id=` that disagrees is refused), generated ids are unguessable, and a token's
//! `rooms` claim is the connection's room allow-list.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hub_edge::auth::sign_hs256;
use hubbub_tests::{post, Client, Ended, TestNode};
use serde_json::{json, Value};

/// A JWT secret of the minimum length (32 bytes).
const SECRET: &str = "identity-secret-identity-secret-";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn token(claims: Value) -> String {
    let mut claims = claims;
    claims["exp"] = json!(now() + 300);
    sign_hs256(SECRET.as_bytes(), &claims.to_string())
}

async fn refused(url: &str) -> String {
    Client::connect_raw(url, &[])
        .await
        .err()
        .unwrap_or_else(|| panic!("{url} must be refused"))
}

#[tokio::test]
async fn under_jwt_an_id_cannot_be_taken_over() {
    let node = TestNode::start(&["--jwt-secret", SECRET]);
    let victim_token = token(json!({"sub":"alice","cid":"victim"}));
    let (mut victim, welcome) =
        Client::connect(&node.ws_url(&format!("/ws?token={victim_token}"))).await;
    assert_eq!(welcome["id"], "victim");

    // Another user's valid token without a cid, asking for the victim's id.
    let attacker = token(json!({"sub":"mallory"}));
    assert_eq!(
        refused(&node.ws_url(&format!("/ws?token={attacker}&id=victim"))).await,
        "HTTP 403"
    );
    // ... or with a cid of its own.
    let attacker_cid = token(json!({"sub":"mallory","cid":"mallory-tab"}));
    assert_eq!(
        refused(&node.ws_url(&format!("/ws?token={attacker_cid}&id=victim"))).await,
        "HTTP 403"
    );
    // Without ?id= the attacker gets a generated id, not the victim's.
    let (_mallory, welcome) = Client::connect(&node.ws_url(&format!("/ws?token={attacker}"))).await;
    assert_ne!(welcome["id"], "victim");

    // The victim was never replaced: it still receives what is emitted to it.
    let r = post(
        node.addr,
        "/api/emit",
        r#"{"to":"victim","data":"still you"}"#,
    )
    .await;
    assert_eq!(r.json(), json!({"delivered":1}));
    assert_eq!(victim.recv().await["data"], "still you");

    // The holder of the cid may reconnect (a new tab replaces the old one, as documented),
    // and may repeat its own cid in ?id=.
    let (_again, welcome) =
        Client::connect(&node.ws_url(&format!("/ws?token={victim_token}&id=victim"))).await;
    assert_eq!(welcome["id"], "victim");
    assert_eq!(victim.ended().await, Ended::Close(4000));
}

#[tokio::test]
async fn without_jwt_ids_are_claimed_by_whoever_connects() {
    // Documented: without tokens a node trusts its clients (trusted networks only).
    let node = TestNode::start(&[]);
    let (mut first, _) = Client::connect(&node.ws_url("/ws?id=shared")).await;
    let (_second, welcome) = Client::connect(&node.ws_url("/ws?id=shared")).await;
    assert_eq!(welcome["id"], "shared");
    assert_eq!(first.ended().await, Ended::Close(4000));
}

async fn generated_ids(node: &TestNode, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..count {
        let (client, welcome) = Client::connect(&node.ws_url("/ws")).await;
        ids.push(welcome["id"].as_str().expect("id").to_owned());
        client.close().await;
    }
    ids
}

#[tokio::test]
async fn generated_ids_are_unpredictable() {
    let first_run = {
        let node = TestNode::start(&["--shards", "2"]);
        generated_ids(&node, 20).await
    };
    let second_run = {
        let node = TestNode::start(&["--shards", "2"]);
        generated_ids(&node, 20).await
    };
    for id in first_run.iter().chain(&second_run) {
        // 36 hex digits: 144 random bits.
        assert_eq!(id.len(), 36, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    let all: HashSet<&String> = first_run.iter().chain(&second_run).collect();
    assert_eq!(all.len(), 40, "every id differs, within and across runs");
    // The same position in two runs gives different ids: the seed is random per run, not
    // derived from the clock or the process id.
    assert!(first_run.iter().zip(&second_run).all(|(a, b)| a != b));
}

#[tokio::test]
async fn token_rooms_are_an_allow_list() {
    let node = TestNode::start(&["--jwt-secret", SECRET]);
    let limited = token(json!({"sub":"u","cid":"limited","rooms":["lobby","news"]}));
    assert_eq!(
        refused(&node.ws_url(&format!("/ws/secret?token={limited}"))).await,
        "HTTP 403",
        "a room in the path outside the claim"
    );
    let (mut c, _) = Client::connect(&node.ws_url(&format!("/ws/news?token={limited}"))).await;
    c.send(json!({"type":"join","room":"secret","ref":1})).await;
    let e = c.recv().await;
    assert_eq!(
        (e["type"].clone(), e["code"].clone()),
        (json!("error"), json!("forbidden"))
    );
    c.send(json!({"type":"publish","room":"secret","data":1,"ref":2}))
        .await;
    assert_eq!(c.recv().await["code"], "forbidden");

    // An unlimited member of "secret" hears nothing from the limited client.
    let free = token(json!({"sub":"v","cid":"free"}));
    let (mut other, _) = Client::connect(&node.ws_url(&format!("/ws/secret?token={free}"))).await;
    assert!(other.silent_for(Duration::from_millis(200)).await);

    // The claim's rooms were joined at connect, and may be published to.
    let r = post(node.addr, "/api/publish", r#"{"room":"lobby","data":"hi"}"#).await;
    assert_eq!(r.json(), json!({"delivered":1}));
    assert_eq!(c.recv().await["data"], "hi");
    c.send(json!({"type":"publish","room":"news","data":3,"ref":3}))
        .await;
    let frames = [c.recv().await, c.recv().await];
    assert!(
        frames.contains(&json!({"type":"ack","ref":3})),
        "{frames:?}"
    );
}

#[tokio::test]
async fn unsigned_tokens_are_refused() {
    use base64::Engine as _;
    let node = TestNode::start(&["--jwt-secret", SECRET]);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = json!({"sub":"u","cid":"x","exp": now() + 300}).to_string();
    for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None"}"#] {
        let unsigned = format!("{}.{}.", b64.encode(header), b64.encode(&claims));
        assert_eq!(
            refused(&node.ws_url(&format!("/ws?token={unsigned}"))).await,
            "HTTP 401",
            "{header}"
        );
    }
}
