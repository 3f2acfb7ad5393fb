//! Bringing back a memory-store node after a crash: its log and its vote
//! died with it, and a voter that forgot whom it voted for could vote twice
//! in one term, so it must not come back as the same voter. It is removed
//! from the configuration, started with an empty directory through
//! `--join` (a learner that catches up), then made a voter again: the
//! issue's "remove a node and add it back" membership change, while the
//! clients run.

use crate::cluster::{Cluster, Start};
use crate::Error;
use std::time::Duration;
use tokio::time::Instant;

/// Retries `request` (built afresh each time) at each running node in turn
/// until one answers with a status `done` accepts, for up to `within`.
async fn until_done(
    cluster: &Cluster,
    what: &str,
    within: Duration,
    request: impl Fn(&reqwest::Client, String) -> reqwest::RequestBuilder,
    done: impl Fn(u16) -> bool,
) -> Result<(), Error> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    let mut round = 0u64;
    loop {
        round += 1;
        for id in cluster.layout.ids().filter(|&id| cluster.is_up(id)) {
            let base = format!("http://{}", cluster.layout.api(id));
            let answer = request(cluster.http(), base).timeout(Duration::from_secs(30)).send().await;
            match answer {
                Ok(response) if done(response.status().as_u16()) => return Ok(()),
                Ok(response) => {
                    last = format!("{}: {}", response.status(), response.text().await.unwrap_or_default())
                }
                Err(error) => last = error.to_string(),
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Cluster(format!(
                "{what}: no node agreed within {within:?} ({round} rounds): {last}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Removes dead node `id` from the configuration, starts it empty with
/// `--join`, and makes it a voter again once it caught up.
pub async fn rejoin_empty(cluster: &mut Cluster, id: u64) -> Result<(), Error> {
    let minute = Duration::from_secs(60);
    // 404: already not a member (a previous attempt got through).
    until_done(
        cluster,
        "remove",
        minute,
        |http, base| http.delete(format!("{base}/cluster/members/{id}")),
        |s| s == 200 || s == 404,
    )
    .await?;
    let via = cluster.layout.ids().find(|&other| other != id && cluster.is_up(other));
    let via = via.ok_or_else(|| Error::Cluster(format!("no running node for node {id} to join through")))?;
    cluster.wipe(id);
    cluster.start(id, Start::Join(via))?;
    // Ready means it knows a leader and applied what it committed: a node
    // outside the configuration hears from no leader, so it was added.
    cluster.wait_ready(minute * 2).await?;
    let voters: Vec<u64> = cluster.layout.ids().collect();
    let body = serde_json::json!({ "voters": voters, "learners": [] });
    // Refused (503, not caught up) until the learner has caught up.
    until_done(
        cluster,
        "promote",
        minute * 2,
        |http, base| http.post(format!("{base}/cluster/membership")).json(&body),
        |s| s == 200,
    )
    .await
}
