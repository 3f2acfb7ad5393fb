//! `raft-kv cluster --secure`: the API over HTTPS with client certificates
//! required. The CLI with the cluster's client certificate reads and writes
//! (and a follower relays an admin request to the leader over HTTPS); a
//! client without a certificate, with one from another CA, or speaking
//! plain HTTP is refused.
//!
//! Ports: the cluster uses 24501-24503 (API) and 24601-24603 (Raft).

mod common;

use common::*;
use raft_kv_example::tls::{http_client, ClientTls};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BASE: u16 = 24500;

fn cli(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(bin()).args(args).env_remove("RUST_LOG").output().expect("run raft-kv");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn endpoint(id: u16) -> String {
    format!("127.0.0.1:{}", BASE + id)
}

/// `--cacert`, `--cert` and `--key` for the certificates in `certs`.
fn tls_flags(certs: &Path) -> Vec<String> {
    let path = |name: &str| certs.join(name).display().to_string();
    ["--cacert", &path("ca.pem"), "--cert", &path("client.pem"), "--key", &path("client-key.pem")]
        .map(String::from)
        .to_vec()
}

/// A client trusting `certs/ca.pem`, presenting `cert` (a directory's
/// `client.pem`) if given.
fn client(certs: &Path, cert: Option<&Path>) -> reqwest::Client {
    let tls = ClientTls {
        cacert: Some(certs.join("ca.pem")),
        cert: cert.map(|dir| dir.join("client.pem")),
        key: cert.map(|dir| dir.join("client-key.pem")),
    };
    http_client(tls.config().expect("client TLS"), Duration::from_secs(10))
}

async fn wait_up(cluster: &Proc) {
    wait_for("the secure cluster to come up", Duration::from_secs(120), || {
        let text = cluster.log_text();
        async move {
            assert!(!text.contains("error:"), "the cluster failed:\n{text}");
            text.contains("are up and agree on a leader").then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secure_cluster_serves_only_clients_with_a_cluster_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_dir = dir.path().join("c");
    let args: Vec<String> =
        ["cluster", "--secure", "--storage", "mem", "--base-port", &BASE.to_string(), "--dir"]
            .map(String::from)
            .into_iter()
            .chain([cluster_dir.display().to_string()])
            .collect();
    let cluster = start(&args, &dir.path().join("cluster.log"));
    wait_up(&cluster).await;
    let certs: PathBuf = cluster_dir.join("certs");
    let text = cluster.log_text();
    assert!(text.contains(&format!("https://{}", endpoint(1))), "{text}");
    assert!(text.contains("--cacert"), "the printed commands carry the TLS flags:\n{text}");

    // The CLI with the cluster's client certificate writes and reads.
    let flags = tls_flags(&certs);
    let with_tls = |verb: &[&str]| {
        let mut args: Vec<&str> = verb.to_vec();
        args.extend(flags.iter().map(String::as_str));
        cli(&args)
    };
    let (code, out, err) = with_tls(&["put", "k", "v1", "--endpoints", &endpoint(1)]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = with_tls(&["get", "k", "--endpoints", &endpoint(3)]);
    assert_eq!((code, out.as_str()), (0, "v1\n"), "{err}");

    // A follower relays an admin request to the leader over HTTPS, and asks
    // its peers' status over HTTPS.
    let trusted = client(&certs, Some(&certs));
    let status: serde_json::Value = trusted
        .get(format!("https://{}/status", endpoint(1)))
        .send()
        .await
        .expect("status over HTTPS")
        .json()
        .await
        .unwrap();
    let leader = status["leader"].as_u64().expect("a leader");
    let (follower, target) = match leader {
        1 => (2, 3),
        2 => (3, 1),
        _ => (1, 2),
    };
    let (code, out, err) =
        with_tls(&["transfer-leader", &target.to_string(), "--endpoints", &endpoint(follower)]);
    assert_eq!(code, 0, "transfer through a follower: {out}{err}");
    let (code, out, err) = with_tls(&["status", "--endpoints", &endpoint(follower), "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let cluster_status: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    let members = cluster_status["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{out}");
    assert!(members.iter().all(|m| m["role"] != "unreachable"), "every peer answered over HTTPS: {out}");

    // Refused: no client certificate, one from another CA, plain HTTP, and
    // the CLI without its certificate.
    let url = format!("https://{}/kv/k", endpoint(2));
    let anonymous = client(&certs, None).get(&url).send().await;
    assert!(anonymous.is_err(), "a client without a certificate got {anonymous:?}");
    let other = dir.path().join("other");
    let (code, out, err) = cli(&["certs", "--dir", &other.display().to_string(), "--nodes", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let stranger = client(&certs, Some(&other)).get(&url).send().await;
    assert!(stranger.is_err(), "a client with another CA's certificate got {stranger:?}");
    let plain = http().get(format!("http://{}/kv/k", endpoint(2))).send().await;
    assert!(plain.map_or(true, |r| !r.status().is_success()), "plain HTTP was served");
    let ca = certs.join("ca.pem").display().to_string();
    let (code, out, err) = cli(&["get", "k", "--endpoints", &endpoint(2), "--cacert", &ca, "--timeout", "2"]);
    assert_ne!(code, 0, "the CLI without a client certificate read: {out}{err}");

    // The cluster is undisturbed.
    let (code, out, err) = with_tls(&["get", "k", "--endpoints", &endpoint(2)]);
    assert_eq!((code, out.as_str()), (0, "v1\n"), "{err}");
    drop(cluster);
}
