//! Shared by the end-to-end tests: real `raft-kv` processes on loopback,
//! each owned by a guard that kills it when dropped (a failing test too),
//! and waits on conditions with deadlines.
//!
//! Ports: every test owns a block of 100 ports from its own base, below
//! the kernel's ephemeral range (32768 and up), so tests running in
//! parallel, and sockets the kernel picks, never collide.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_raft-kv")
}

/// A running process, killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// Sends `signal` (`TERM`, `INT`, `KILL`...).
    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            raft_kv_example::cluster::send_signal(child.id(), signal);
        }
    }

    /// Waits (bounded) for the process to exit; returns its status.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.as_mut().expect("running").try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit in {within:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process at once and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `raft-kv` with `args`, its output into `log`.
pub fn start(args: &[String], log: &Path) -> Proc {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
    let child = Command::new(bin())
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .spawn()
        .expect("start raft-kv");
    Proc { child: Some(child), log: log.to_path_buf() }
}

/// Runs a client verb to its end; returns its exit code, stdout and stderr.
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(bin()).args(args).env_remove("RUST_LOG").output().expect("run raft-kv");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One node's addresses in a test's port block.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub raft: u16,
    pub api: u16,
}

/// Node `id`'s ports in the block starting at `base`.
pub fn ports(base: u16, id: u64) -> Ports {
    Ports { api: base + id as u16, raft: base + 50 + id as u16 }
}

/// The `--initial-members` value for nodes `1..=n` of the block.
pub fn members(base: u16, n: u64) -> String {
    (1..=n)
        .map(|id| {
            let p = ports(base, id);
            format!("{id}=127.0.0.1:{}@127.0.0.1:{}", p.raft, p.api)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The arguments of `raft-kv node` for node `id` of the block.
pub fn node_args(base: u16, id: u64, dir: &Path, extra: &[&str]) -> Vec<String> {
    let p = ports(base, id);
    let mut args: Vec<String> = vec![
        "node".into(),
        "--id".into(),
        id.to_string(),
        "--raft-addr".into(),
        format!("127.0.0.1:{}", p.raft),
        "--api-addr".into(),
        format!("127.0.0.1:{}", p.api),
        "--data-dir".into(),
        dir.join(format!("node-{id}")).display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Starts node `id` of the block.
pub fn start_node(base: u16, id: u64, dir: &Path, extra: &[&str]) -> Proc {
    std::fs::create_dir_all(dir).expect("dir");
    start(&node_args(base, id, dir, extra), &dir.join(format!("node-{id}.log")))
}

/// The API URL of node `id`.
pub fn url(base: u16, id: u64, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", ports(base, id).api)
}

/// A client with a short per-request timeout.
pub fn http() -> reqwest::Client {
    raft_kv_example::tls::http_client(None, Duration::from_secs(15))
}

/// Polls `check` until it returns `Some`, failing after `within`.
pub async fn wait_for<T, F: Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until node `id` answers `/ready` with 200.
pub async fn wait_ready(base: u16, id: u64) {
    let http = http();
    wait_for(&format!("node {id} ready"), Duration::from_secs(60), || {
        let request = http.get(url(base, id, "/ready")).send();
        async move { request.await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
    })
    .await
}

/// The leader node `id` knows of, once it knows one.
pub async fn leader_of(base: u16, id: u64) -> u64 {
    let http = http();
    wait_for(&format!("node {id} to know a leader"), Duration::from_secs(60), || {
        let request = http.get(url(base, id, "/status")).send();
        async move {
            let status: serde_json::Value = request.await.ok()?.json().await.ok()?;
            status["leader"].as_u64()
        }
    })
    .await
}

/// PUTs `value` at `key` through node `id`, retrying while unavailable;
/// returns the revision.
pub async fn put(base: u16, id: u64, key: &str, value: &str) -> u64 {
    let http = http();
    wait_for(&format!("PUT {key} at node {id}"), Duration::from_secs(60), || {
        let request = http.put(url(base, id, &format!("/kv/{key}"))).body(value.to_string()).send();
        async move {
            let response = request.await.ok()?;
            if response.status() != 200 {
                return None;
            }
            let body: serde_json::Value = response.json().await.ok()?;
            body["revision"].as_u64()
        }
    })
    .await
}

/// GETs `key` through node `id` (linearizable), retrying while unavailable;
/// `None` for a 404.
pub async fn get(base: u16, id: u64, key: &str) -> Option<String> {
    let http = http();
    wait_for(&format!("GET {key} at node {id}"), Duration::from_secs(60), || {
        let request = http.get(url(base, id, &format!("/kv/{key}"))).send();
        async move {
            let response = request.await.ok()?;
            match response.status().as_u16() {
                200 => Some(Some(response.text().await.ok()?)),
                404 => Some(None),
                _ => None,
            }
        }
    })
    .await
}

/// A TCP relay in front of one node's API that passes a client's request
/// through and keeps the node's answer from the client, as a network that
/// loses the answer does: the node acts on the request and answers, the
/// client hears nothing and times out. The answer is kept for the test.
pub struct AnswerLosingRelay {
    answer: Option<tokio::sync::oneshot::Receiver<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AnswerLosingRelay {
    /// Listens on `listen` (loopback) for one connection, relayed to the API
    /// on `target`.
    pub async fn start(listen: u16, target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", listen)).await.expect("relay port");
        let (kept, answer) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let (mut client, _) = listener.accept().await.expect("relay accept");
            let mut node =
                tokio::net::TcpStream::connect(("127.0.0.1", target)).await.expect("relay connect");
            let (mut from_node, mut to_node) = node.split();
            let (mut from_client, _to_client) = client.split();
            // Both halves stay open until the relay is dropped: the client
            // must time out, not see a close.
            let forward = async {
                let _ = tokio::io::copy(&mut from_client, &mut to_node).await;
                std::future::pending::<()>().await
            };
            let keep = async {
                let _ = kept.send(read_http_answer(&mut from_node).await);
                std::future::pending::<()>().await
            };
            tokio::join!(forward, keep);
        });
        Self { answer: Some(answer), task }
    }

    /// The node's whole answer (status line, headers, body), once it gave
    /// one, failing after `within`.
    pub async fn kept_answer(&mut self, within: Duration) -> Vec<u8> {
        let answer = self.answer.take().expect("the answer is taken once");
        tokio::time::timeout(within, answer)
            .await
            .expect("the node did not answer through the relay in time")
            .expect("the relay stopped")
    }
}

impl Drop for AnswerLosingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 answer (with a Content-Length) from `from`, or what
/// came before the connection closed.
async fn read_http_answer(from: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((head, body)) = split_http(&answer) {
            let head = String::from_utf8_lossy(head).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                return answer;
            }
        }
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return answer,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An HTTP message's head and body, once the head is complete.
pub fn split_http(message: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = message.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&message[..end], &message[end + 4..]))
}
