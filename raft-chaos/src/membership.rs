//! Bringing back a memory-store node after a crash: its log and its vote
//! died with it, and a voter that forgot whom it voted for could vote twice
//! in one term, so it must not come back as the same voter. It is removed
//! from the configuration, started with an empty directory through
//! `--join` (a learner that catches up), then made a voter again: the
//! issue's "remove a node and add it back" membership change, while the
//! clients run. The `remove-rejoin` and `replace` faults make the same
//! change on purpose (with either store), the latter under a new node id;
//! leadership transfers are asked for here too.

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

/// Removes the node in slot `slot` from the configuration (404: already
/// not a member, as after an attempt that got through). It may be dead or
/// alive; stop it after (a removed node that runs on only asks for votes
/// nobody grants).
pub async fn remove(cluster: &Cluster, slot: u64) -> Result<(), Error> {
    let id = cluster.id(slot);
    until_done(
        cluster,
        "remove",
        Duration::from_secs(60),
        |http, base| http.delete(format!("{base}/cluster/members/{id}")),
        |s| s == 200 || s == 404,
    )
    .await
}

/// Starts the node of slot `slot`, removed and stopped, again with an
/// empty directory through `--join`, under its old id or (`new_id`) the
/// slot's next one, and makes it a voter once it caught up. Says its id.
pub async fn join_empty(cluster: &mut Cluster, slot: u64, new_id: bool) -> Result<u64, Error> {
    let minute = Duration::from_secs(60);
    let via = cluster.layout.ids().find(|&other| other != slot && cluster.is_up(other));
    let via =
        via.ok_or_else(|| Error::Cluster(format!("no running node for slot {slot} to join through")))?;
    if new_id && cluster.next_id(slot).is_none() {
        // Every id the slot may take is used: rejoin under the last one
        // (what `remove-rejoin` does) rather than end the run.
        eprintln!(
            "raft-chaos: slot {slot} has no node id left; it rejoins under node id {}",
            cluster.id(slot)
        );
    }
    cluster.wipe(slot);
    cluster.start(slot, Start::Join(via))?;
    // Ready means it knows a leader and applied what it committed: a node
    // outside the configuration hears from no leader, so it was added.
    cluster.wait_ready(minute * 2).await?;
    let body = serde_json::json!({ "voters": cluster.voters(), "learners": [] });
    // Refused (503, not caught up) until the learner has caught up.
    until_done(
        cluster,
        "promote",
        minute * 2,
        |http, base| http.post(format!("{base}/cluster/membership")).json(&body),
        |s| s == 200,
    )
    .await?;
    Ok(cluster.id(slot))
}

/// Removes dead node `slot` from the configuration, starts it empty with
/// `--join`, and makes it a voter again once it caught up (a memory node
/// after a crash).
pub async fn rejoin_empty(cluster: &mut Cluster, slot: u64) -> Result<(), Error> {
    remove(cluster, slot).await?;
    join_empty(cluster, slot, false).await.map(drop)
}

/// Asks the cluster (any running node; requests reaching a follower are
/// relayed to the leader) to hand leadership to the node in slot `slot`;
/// says what came of it. A refusal is an outcome, not an error: the target
/// may be cut off or behind, and the request may meet an election.
pub async fn transfer_leader(cluster: &Cluster, via: u64, slot: u64) -> String {
    let to = cluster.id(slot);
    let url = format!("http://{}/cluster/transfer-leader", cluster.layout.api(via));
    let body = serde_json::json!({ "to": to });
    let answer = cluster.http().post(url).json(&body).timeout(Duration::from_secs(10)).send().await;
    match answer {
        Ok(response) if response.status().is_success() => format!("to node {to}: moved"),
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            format!("to node {to}: refused, {status} {}", text.trim())
        }
        Err(error) => format!("to node {to}: no answer, {error}"),
    }
}
