//! Peer addresses at run time, and the errors `bind` reports.

mod common;

use common::{addr, bind, ca, config, identity};
use raft_net_quic::{QuicError, QuicTransport};
use std::collections::HashMap;
use std::time::Duration;

#[tokio::test]
async fn peers_are_added_moved_and_removed_at_run_time() {
    let ca = ca();
    let a = "127.0.0.1:7001".parse().unwrap();
    let b = "127.0.0.1:7002".parse().unwrap();
    let mut settings = config();
    settings.peers.insert(2, a);
    let (one, _) = bind(&ca, 1, settings);
    assert_eq!(one.peers(), HashMap::from([(2, a)]));
    one.set_peer(2, b);
    one.set_peer(3, a);
    one.set_peer(1, a); // itself: ignored
    assert_eq!(one.peers(), HashMap::from([(2, b), (3, a)]));
    one.remove_peer(2);
    assert_eq!(one.peers(), HashMap::from([(3, a)]));
    one.close();
    assert!(one.peers().is_empty(), "a closed transport has no peers");
}

#[tokio::test]
async fn addresses_from_the_configuration_are_adopted() {
    use raft_core::runtime::Transport;
    let ca = ca();
    let a: std::net::SocketAddr = "127.0.0.1:7001".parse().unwrap();
    let (one, _) = bind(&ca, 1, config());
    let recorded = std::collections::BTreeMap::from([
        (1, "127.0.0.1:7000".to_string()), // itself: ignored
        (2, a.to_string()),                // a new member
        (3, "not an address".to_string()), // logged and ignored
    ]);
    one.update_addresses(&recorded);
    assert_eq!(one.peers(), HashMap::from([(2, a)]));
    one.close();
}

#[tokio::test]
async fn bind_reports_bad_settings_and_a_taken_address() {
    let ca = ca();
    let (inbound, _inbox) = tokio::sync::mpsc::channel(16);
    let identity = identity(&ca, 1);
    let mut bad = config();
    bad.keep_alive = bad.idle_timeout;
    let error = QuicTransport::bind(&identity, bad, inbound.clone()).expect_err("refused");
    assert!(matches!(error, QuicError::Config(_)), "{error}");
    let mut bad = config();
    bad.max_frame_bytes = 100;
    let error = QuicTransport::bind(&identity, bad, inbound.clone()).expect_err("refused");
    assert!(matches!(error, QuicError::Config(_)), "{error}");
    let mut bad = config();
    bad.reconnect_min = Duration::from_secs(10);
    let error = QuicTransport::bind(&identity, bad, inbound.clone()).expect_err("refused");
    assert!(matches!(error, QuicError::Config(_)), "{error}");

    let (taken, _) = bind(&ca, 2, config());
    let mut same = config();
    same.listen = addr(&taken);
    let error = QuicTransport::bind(&identity, same, inbound).expect_err("refused");
    assert!(matches!(error, QuicError::Bind { .. }), "{error}");
}

#[test]
fn bind_outside_a_runtime_is_an_error() {
    let ca = ca();
    let (inbound, _inbox) = tokio::sync::mpsc::channel(16);
    let error = QuicTransport::bind(&identity(&ca, 1), config(), inbound).expect_err("refused");
    assert!(matches!(error, QuicError::NoRuntime), "{error}");
}
