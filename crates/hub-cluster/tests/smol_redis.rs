//! The Redis registry and bus on smol: this test binary never starts a tokio runtime, so
//! any tokio timer, spawn or socket on the Redis path would panic here.

use std::time::Duration;

use bytes::Bytes;
use hub_cluster::{BusEvent, RedisBus, Registry, RegistryConfig};
use hub_core::node::RegistryCommand;
use hub_core::{NodeId, RequestId, RoomName};
use hub_serve::RegistrySpec;
use hubbub_tests::servers::RedisServer;

async fn next_event(events: &mut tokio::sync::mpsc::UnboundedReceiver<BusEvent>) -> BusEvent {
    let wait = async_io::Timer::after(Duration::from_secs(5));
    let event = async { events.recv().await };
    futures_lite::future::or(async { event.await.expect("bus open") }, async {
        wait.await;
        panic!("no bus event within 5s")
    })
    .await
}

#[test]
fn redis_registry_and_bus_run_on_smol_without_tokio() {
    hub_cluster::use_smol();
    assert!(hub_cluster::on_smol());
    let redis = RedisServer::start();
    smol::block_on(async {
        assert!(
            tokio::runtime::Handle::try_current().is_err(),
            "no tokio runtime here"
        );
        let config = RegistryConfig::new(NodeId::from("a"), "127.0.0.1:1", Duration::from_secs(5));
        let registry = Registry::connect(&RegistrySpec::Redis(redis.url()), config)
            .await
            .expect("connect");
        registry.join().await.expect("join");
        let batch = [
            RegistryCommand::Register {
                client: "c1".into(),
                user: None,
            },
            RegistryCommand::Lookup {
                client: "c1".into(),
                req: RequestId(7),
            },
        ];
        let result = registry.apply(&batch).await.expect("apply");
        assert_eq!(
            result.lookups,
            vec![(RequestId(7), Some(NodeId::from("a")))]
        );
        assert_eq!(registry.nodes().await.expect("nodes").len(), 1);
        registry.leave().await.expect("leave");

        let (a, mut a_events) =
            RedisBus::connect(&redis.url(), NodeId::from("a"), Duration::from_secs(2))
                .await
                .expect("bus a");
        let (b, mut b_events) =
            RedisBus::connect(&redis.url(), NodeId::from("b"), Duration::from_secs(2))
                .await
                .expect("bus b");
        assert!(matches!(next_event(&mut a_events).await, BusEvent::Up));
        assert!(matches!(next_event(&mut b_events).await, BusEvent::Up));
        b.subscribe(RoomName::from("r"));
        // Subscriptions are applied by the bus task; publish until one arrives.
        let frame = Bytes::from_static(b"\x81\x02hi");
        let mut got = None;
        for _ in 0..50 {
            a.publish(Some(&RoomName::from("r")), frame.clone())
                .await
                .expect("publish");
            let wait = async_io::Timer::after(Duration::from_millis(100));
            let received = futures_lite::future::or(async { b_events.recv().await }, async {
                wait.await;
                None
            })
            .await;
            if let Some(BusEvent::Message {
                origin,
                room,
                frame,
            }) = received
            {
                got = Some((origin, room, frame));
                break;
            }
        }
        let (origin, room, received) = got.expect("a room message over the bus");
        assert_eq!(origin, NodeId::from("a"));
        assert_eq!(room, Some(RoomName::from("r")));
        assert_eq!(received, frame);
    });
}
