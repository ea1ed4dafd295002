use super::*;

fn occupied(c: &str) -> WebhookEvent {
    WebhookEvent::ChannelOccupied { channel: c.into() }
}

#[test]
fn bodies_are_pushers() {
    let events = [
        occupied("a"),
        WebhookEvent::ChannelVacated {
            channel: "a".into(),
        },
        WebhookEvent::MemberAdded {
            channel: "presence-a".into(),
            user_id: "u1".into(),
        },
        WebhookEvent::MemberRemoved {
            channel: "presence-a".into(),
            user_id: "u1".into(),
        },
        WebhookEvent::ClientEvent {
            channel: "presence-a".into(),
            event: "client-typing".into(),
            data: "{\"x\":1}".into(),
            socket_id: "1.2".into(),
            user_id: Some("u1".into()),
        },
        WebhookEvent::ClientEvent {
            channel: "private-a".into(),
            event: "client-x".into(),
            data: "y".into(),
            socket_id: "3.4".into(),
            user_id: None,
        },
    ];
    let v: Value = serde_json::from_str(&body(1_700_000_000_123, &events)).expect("json");
    assert_eq!(
        v,
        json!({"time_ms": 1_700_000_000_123u64, "events": [
            {"name":"channel_occupied","channel":"a"},
            {"name":"channel_vacated","channel":"a"},
            {"name":"member_added","channel":"presence-a","user_id":"u1"},
            {"name":"member_removed","channel":"presence-a","user_id":"u1"},
            {"name":"client_event","channel":"presence-a","event":"client-typing","data":"{\"x\":1}","socket_id":"1.2","user_id":"u1"},
            {"name":"client_event","channel":"private-a","event":"client-x","data":"y","socket_id":"3.4"},
        ]})
    );
}

#[test]
fn the_signature_is_the_hmac_of_the_body() {
    // As the `pusher` Node SDK computes it (WebHook.isValid):
    // crypto.createHmac("sha256", "secret-0123456789abcdef").update('{"time_ms":1,"events":[]}').digest("hex")
    assert_eq!(
        signature(b"secret-0123456789abcdef", br#"{"time_ms":1,"events":[]}"#),
        "1060a7c9bfc36e15f60f1b95d54b33aaaf2eba07b6c76e89eeb5c661abb4aa42"
    );
}

#[test]
fn events_wait_for_their_batch_then_go_together() {
    let mut q = WebhookQueue::new();
    assert_eq!(q.next_due(), None);
    q.push(0, occupied("a"), 1000);
    q.push(0, occupied("b"), 1010);
    assert_eq!(q.next_due(), Some(1000 + BATCH_DELAY_MS));
    assert_eq!(q.poll(1000 + BATCH_DELAY_MS - 1), None);
    let d = q.poll(1000 + BATCH_DELAY_MS).expect("due");
    assert_eq!(d.events, vec![occupied("a"), occupied("b")]);
    assert_eq!((d.endpoint, d.attempt), (0, 1));
    assert_eq!(q.finished(d.id, true, 1100), Outcome::Delivered);
    assert_eq!(q.next_due(), None);
    assert_eq!(q.poll(u64::MAX), None);
}

#[test]
fn a_full_batch_goes_at_once_and_the_rest_follows() {
    let mut q = WebhookQueue::new();
    for i in 0..MAX_BATCH + 1 {
        q.push(0, occupied(&i.to_string()), 5);
    }
    assert_eq!(q.next_due(), Some(5));
    let d = q.poll(5).expect("full batch");
    assert_eq!(d.events.len(), MAX_BATCH);
    // One request per endpoint at a time.
    assert_eq!(q.poll(1_000), None);
    assert_eq!(q.next_due(), None);
    q.finished(d.id, true, 6);
    let rest = q.poll(6 + BATCH_DELAY_MS).expect("the rest");
    assert_eq!(rest.events, vec![occupied(&MAX_BATCH.to_string())]);
}

#[test]
fn failures_are_retried_with_doubling_backoff_then_dropped() {
    let mut q = WebhookQueue::new();
    q.push(0, occupied("a"), 0);
    let mut now = BATCH_DELAY_MS;
    let mut d = q.poll(now).expect("first");
    let mut waits = Vec::new();
    loop {
        match q.finished(d.id, false, now) {
            Outcome::Retrying => {
                // Events pushed meanwhile wait behind the retry (order is kept).
                q.push(0, occupied("later"), now);
                let due = q.next_due().expect("retry due");
                waits.push(due - now);
                assert_eq!(q.poll(due - 1), None);
                now = due;
                d = q.poll(now).expect("retry");
                assert_eq!(d.events, vec![occupied("a")]);
            }
            Outcome::Dropped => break,
            Outcome::Delivered => unreachable!(),
        }
    }
    assert_eq!(d.attempt, MAX_ATTEMPTS);
    assert_eq!(waits, vec![500, 1000, 2000, 4000, 8000]);
    assert_eq!(q.dropped, 1);
    // Then the events that waited go.
    let next = q.poll(now + BATCH_DELAY_MS).expect("the later events");
    assert_eq!(next.events.len(), MAX_ATTEMPTS as usize - 1);
}

#[test]
fn endpoints_are_independent_and_queues_bounded() {
    let mut q = WebhookQueue::new();
    q.push(0, occupied("a"), 0);
    q.push(2, occupied("b"), 0);
    let d0 = q.poll(BATCH_DELAY_MS).expect("endpoint 0");
    let d2 = q.poll(BATCH_DELAY_MS).expect("endpoint 2 while 0 is out");
    assert_eq!((d0.endpoint, d2.endpoint), (0, 2));
    assert_eq!(q.finished(d0.id, false, 100), Outcome::Retrying);
    assert_eq!(q.finished(12345, true, 100), Outcome::Dropped);
    let mut q = WebhookQueue::new();
    for i in 0..MAX_QUEUED + 5 {
        q.push(0, occupied(&i.to_string()), 0);
    }
    assert_eq!(q.dropped, 5);
    let first = q.poll(0).expect("batch");
    assert_eq!(first.events[0], occupied("5"));
}
