//! Peer addresses at run time, and the errors `bind` reports.

mod common;

use common::{addr, bind, ca, config, identity};
use raft_core::runtime::Inbox;
use raft_net_quic::{QuicError, QuicTransport};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

#[tokio::test]
async fn peers_are_added_moved_and_removed_at_run_time() {
    let ca = ca();
    let a = "127.0.0.1:7001".parse().unwrap();
    let b = "127.0.0.1:7002".parse().unwrap();
    let mut settings = config();
    settings.peers.insert(2, a);
    let (one, _) = bind(&ca, 1, settings).await;
    assert_eq!(one.peers(), BTreeMap::from([(2, a)]));
    one.set_peer(2, b);
    one.set_peer(3, a);
    one.set_peer(1, a); // itself: ignored
    assert_eq!(one.peers(), BTreeMap::from([(2, b), (3, a)]));
    one.remove_peer(2);
    assert_eq!(one.peers(), BTreeMap::from([(3, a)]));
    one.close();
    assert!(one.peers().is_empty(), "a closed transport has no peers");
}

#[tokio::test]
async fn addresses_from_the_configuration_are_adopted() {
    use raft_core::runtime::Transport;
    let ca = ca();
    let a: std::net::SocketAddr = "127.0.0.1:7001".parse().unwrap();
    let (one, _) = bind(&ca, 1, config()).await;
    let recorded = std::collections::BTreeMap::from([
        (1, "127.0.0.1:7000".to_string()), // itself: ignored
        (2, a.to_string()),                // a new member
        (3, "not an address".to_string()), // logged and ignored
    ]);
    one.update_addresses(&recorded);
    assert_eq!(one.peers(), BTreeMap::from([(2, a)]));
    one.close();
}

#[tokio::test]
async fn bind_reports_bad_settings_and_a_taken_address() {
    let ca = ca();
    let inbox = Inbox::default();
    let identity = identity(&ca, 1);
    let mut bad = config();
    bad.keep_alive = bad.idle_timeout;
    let error = QuicTransport::bind(bad, &identity, inbox.clone()).await.expect_err("refused");
    assert!(matches!(error, QuicError::Config(_)), "{error}");
    let mut bad = config();
    bad.max_frame_bytes = 100;
    let error = QuicTransport::bind(bad, &identity, inbox.clone()).await.expect_err("refused");
    assert!(matches!(error, QuicError::Config(_)), "{error}");
    let mut bad = config();
    bad.reconnect_min = Duration::from_secs(10);
    let error = QuicTransport::bind(bad, &identity, inbox.clone()).await.expect_err("refused");
    assert!(matches!(error, QuicError::Config(_)), "{error}");

    let (taken, _) = bind(&ca, 2, config()).await;
    let mut same = config();
    same.listen = addr(&taken);
    let error = QuicTransport::bind(same, &identity, inbox.clone()).await.expect_err("refused");
    assert!(matches!(error, QuicError::Bind { .. }), "{error}");
}

#[test]
fn bind_outside_a_runtime_is_an_error() {
    let ca = ca();
    let identity = identity(&ca, 1);
    // Polled once, outside any runtime: bind refuses before it would wait.
    let mut bind = std::pin::pin!(QuicTransport::bind(config(), &identity, Inbox::default()));
    let polled = bind.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    let std::task::Poll::Ready(outcome) = polled else { panic!("bind waited outside a runtime") };
    let error = outcome.expect_err("refused");
    assert!(matches!(error, QuicError::NoRuntime), "{error}");
}
