//! A fault scenario shared by the CI fault test (`e2e_messaging`) and the soak bench: two
//! daemons on a devnet send each other messages in rounds, and every round injects one fault:
//! snodes stopped and restarted, snodes dropping or delaying their replies, snodes answering
//! 5xx, or a daemon SIGKILLed right after it queued a round (mid-send) and started again. Then
//! the faults heal and both logs are read back: what was lost, what was duplicated, what
//! failed, and whether Subscribe from 0 equals History.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use sessiond_api::v1::{
    event, CreateIdentityRequest, DeliveryState, Event, ListEventsRequest, SendMessageRequest,
    SubscribeRequest,
};
use tonic::Code;

use crate::support::{bearer, clients, networked_command, Clients, Daemon, Net};

/// What a run found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Messages queued in each direction.
    pub each_way: usize,
    /// Messages never received (both directions).
    pub lost: usize,
    /// Extra copies received, plus extra delivery events for one message (both directions).
    pub duplicated: usize,
    /// Messages that ended failed.
    pub failed: usize,
    /// Messages of the killed daemon with no final delivery state.
    pub unsettled: usize,
    /// SIGKILLs of a daemon.
    pub kills: usize,
    /// Node faults injected (one per node per round).
    pub node_faults: usize,
    /// Sends refused for back-pressure and retried.
    pub backpressure_retries: usize,
    /// Subscribe from 0 returned exactly History (both identities).
    pub subscribe_matches_history: bool,
    /// From the first send to the last check.
    pub elapsed: Duration,
}

impl Outcome {
    /// Nothing lost, duplicated, failed or left unsettled, and the streams agree.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.failed == 0
            && self.unsettled == 0
            && self.subscribe_matches_history
    }
}

/// The faults, one per round, in this order.
#[derive(Debug, Clone, Copy)]
enum Fault {
    StopNodes,
    DropReplies,
    SlowReplies,
    ServerErrors,
    KillSender,
}

const FAULTS: [Fault; 5] = [
    Fault::StopNodes,
    Fault::DropReplies,
    Fault::SlowReplies,
    Fault::ServerErrors,
    Fault::KillSender,
];

/// A daemon of the scenario, restartable.
struct Side {
    name: &'static str,
    identity: &'static str,
    daemon: Option<Daemon>,
    clients: Clients,
}

async fn start(n: &Net, name: &str) -> Daemon {
    let dir = n.dir.path().join(name);
    let cmd = networked_command(&dir, &n.manifest, &n.config);
    tokio::task::spawn_blocking(move || Daemon::start_with(&dir, cmd))
        .await
        .expect("start daemon")
}

impl Side {
    async fn new(n: &Net, name: &'static str, identity: &'static str) -> (Side, String) {
        let daemon = start(n, name).await;
        let mut clients = clients(&daemon.channel().await, bearer(&daemon.admin_token));
        let account = clients
            .ids
            .create_identity(CreateIdentityRequest {
                name: identity.into(),
            })
            .await
            .expect("create identity")
            .into_inner()
            .identity
            .expect("identity")
            .account_id;
        let side = Side {
            name,
            identity,
            daemon: Some(daemon),
            clients,
        };
        (side, account)
    }

    /// SIGKILL, then start again on the same data dir.
    async fn kill_and_restart(&mut self, n: &Net) {
        if let Some(d) = self.daemon.take() {
            tokio::task::spawn_blocking(move || d.kill9())
                .await
                .expect("kill");
        }
        let d = start(n, self.name).await;
        self.clients = clients(&d.channel().await, bearer(&d.admin_token));
        self.daemon = Some(d);
    }

    /// Queues `text` (its own idempotency key), retrying while the outbox is full.
    async fn send(&mut self, to: &str, text: &str, retries: &mut usize) -> String {
        loop {
            let r = self
                .clients
                .msgs
                .send_message(SendMessageRequest {
                    identity: self.identity.into(),
                    recipient: to.into(),
                    text: text.into(),
                    idempotency_key: text.into(),
                    ..Default::default()
                })
                .await;
            match r {
                Ok(r) => return r.into_inner().message_id,
                Err(s) if s.code() == Code::ResourceExhausted => {
                    *retries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(s) => panic!("send {text:?}: {s:?}"),
            }
        }
    }

    async fn history(&mut self) -> Vec<Event> {
        history(&mut self.clients, self.identity).await
    }

    fn terminate(self) {
        if let Some(d) = self.daemon {
            d.terminate();
        }
    }
}

/// The whole log of an identity, through History.
pub async fn history(c: &mut Clients, identity: &str) -> Vec<Event> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = c
            .msgs
            .list_events(ListEventsRequest {
                identity: identity.into(),
                after_seq: after,
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("history")
            .into_inner();
        after = page.events.last().map_or(after, |e| e.seq);
        out.extend(page.events);
        if page.next_page_token.is_empty() {
            return out;
        }
    }
}

/// Texts received, with how often.
fn received(log: &[Event]) -> HashMap<String, usize> {
    let mut out: HashMap<String, usize> = HashMap::new();
    for e in log {
        if let Some(event::Kind::Incoming(m)) = &e.kind {
            *out.entry(m.text.clone()).or_default() += 1;
        }
    }
    out
}

/// Delivery events per message id: (sent, failed).
fn deliveries(log: &[Event]) -> HashMap<String, (usize, usize)> {
    let mut out: HashMap<String, (usize, usize)> = HashMap::new();
    for e in log {
        if let Some(event::Kind::Delivery(d)) = &e.kind {
            let slot = out.entry(d.message_id.clone()).or_default();
            if d.state == DeliveryState::Sent as i32 {
                slot.0 += 1;
            } else if d.state == DeliveryState::Failed as i32 {
                slot.1 += 1;
            }
        }
    }
    out
}

/// Subscribe from 0 until it has as many events as `log`: equal to it?
async fn subscribe_equals(c: &mut Clients, identity: &str, log: &[Event]) -> bool {
    let mut stream = c
        .msgs
        .subscribe(SubscribeRequest {
            identity: identity.into(),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut seen = Vec::with_capacity(log.len());
    while seen.len() < log.len() {
        match tokio::time::timeout(Duration::from_secs(30), stream.message()).await {
            Ok(Ok(Some(r))) => seen.extend(r.event),
            _ => return false,
        }
    }
    seen == log
}

/// Runs `rounds` rounds of `per_round` messages each way (one fault per round, each held for
/// `hold` while the daemons retry), heals everything, then waits up to `drain` for every message
/// to arrive and settle. Prints a line per round if `verbose`.
pub async fn run(
    n: &Net,
    rounds: usize,
    per_round: usize,
    hold: Duration,
    drain: Duration,
    verbose: bool,
) -> Outcome {
    let (mut a, alice) = Side::new(n, "fault-a", "alice").await;
    let (mut b, bob) = Side::new(n, "fault-b", "bob").await;
    let mut out = Outcome {
        each_way: rounds * per_round,
        ..Outcome::default()
    };
    let started = Instant::now();
    let nodes = n.devnet.nodes();
    let (mut to_b, mut to_a) = (HashMap::new(), HashMap::new());
    for round in 0..rounds {
        let fault = FAULTS[round % FAULTS.len()];
        // Different nodes each round; never a whole swarm of 3 at once (0, 3, 6 … differ).
        let pick = |k: usize| (round * 2 + k * 4) % nodes.len();
        match fault {
            Fault::StopNodes => {
                for k in 0..2 {
                    nodes[pick(k)].stop().await;
                }
                out.node_faults += 2;
            }
            Fault::DropReplies => {
                for k in 0..2 {
                    nodes[pick(k)].set_drop_replies(true);
                }
                out.node_faults += 2;
            }
            Fault::SlowReplies => {
                for k in 0..3 {
                    nodes[pick(k)].set_delay(Duration::from_millis(1500));
                }
                out.node_faults += 3;
            }
            Fault::ServerErrors => {
                nodes[pick(0)].set_fail_status(Some(503));
                nodes[pick(1)].set_fail_status(Some(500));
                out.node_faults += 2;
            }
            Fault::KillSender => {}
        }
        for i in 0..per_round {
            let t = format!("a>b {round}-{i}");
            let id = a.send(&bob, &t, &mut out.backpressure_retries).await;
            to_b.insert(t, id);
            let t = format!("b>a {round}-{i}");
            let id = b.send(&alice, &t, &mut out.backpressure_retries).await;
            to_a.insert(t, id);
        }
        if let Fault::KillSender = fault {
            // Mid-send: the round is queued and draining. Alternate which daemon dies.
            let victim = if (round / FAULTS.len()) % 2 == 0 {
                &mut a
            } else {
                &mut b
            };
            victim.kill_and_restart(n).await;
            out.kills += 1;
        } else {
            tokio::time::sleep(hold).await;
        }
        for node in nodes {
            node.set_drop_replies(false);
            node.set_delay(Duration::ZERO);
            node.set_fail_status(None);
            node.restart().await.expect("restart node");
        }
        if verbose {
            eprintln!(
                "round {round:>3} {fault:?}: {} queued each way, {:.1}s",
                to_b.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    // Healed: wait until everything arrived and every message has its final state.
    let until = Instant::now() + drain;
    let (log_a, log_b) = loop {
        let (log_a, log_b) = (a.history().await, b.history().await);
        let (got_a, got_b) = (received(&log_a), received(&log_b));
        let (del_a, del_b) = (deliveries(&log_a), deliveries(&log_b));
        let settled = |sent: &HashMap<String, String>, del: &HashMap<String, (usize, usize)>| {
            sent.values()
                .all(|id| del.get(id).is_some_and(|(s, f)| s + f > 0))
        };
        let done = to_a.keys().all(|t| got_a.contains_key(t))
            && to_b.keys().all(|t| got_b.contains_key(t))
            && settled(&to_b, &del_a)
            && settled(&to_a, &del_b);
        if done || Instant::now() >= until {
            break (log_a, log_b);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for (sent, log, del_log, to) in [
        (&to_b, &log_b, &log_a, &bob),
        (&to_a, &log_a, &log_b, &alice),
    ] {
        let got = received(log);
        let lost: Vec<&String> = sent.keys().filter(|t| !got.contains_key(*t)).collect();
        out.lost += lost.len();
        if verbose && !lost.is_empty() {
            explain_lost(n, to, &lost, sent, del_log);
        }
        out.duplicated += got.values().map(|c| c.saturating_sub(1)).sum::<usize>();
        // Texts nobody sent (a garbled or foreign message) count as duplicates too.
        out.duplicated += got.keys().filter(|t| !sent.contains_key(*t)).count();
        let del = deliveries(del_log);
        for id in sent.values() {
            match del.get(id) {
                Some(&(s, f)) => {
                    out.failed += usize::from(f > 0);
                    out.duplicated += (s + f).saturating_sub(1);
                }
                None => out.unsettled += 1,
            }
        }
    }
    let ids: HashSet<&String> = to_b.values().chain(to_a.values()).collect();
    assert_eq!(ids.len(), 2 * out.each_way, "message ids are unique");
    out.subscribe_matches_history = subscribe_equals(&mut a.clients, "alice", &log_a).await
        && subscribe_equals(&mut b.clients, "bob", &log_b).await;
    out.elapsed = started.elapsed();
    a.terminate();
    b.terminate();
    out
}

/// Prints, for each lost message (at most 20), its hash and which members of the recipient's
/// swarm hold it: a message no member holds was never stored; one some members hold was stored
/// and not read.
fn explain_lost(
    n: &Net,
    to: &str,
    lost: &[&String],
    sent: &HashMap<String, String>,
    sender_log: &[Event],
) {
    let hashes: HashMap<&str, &str> = sender_log
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::Delivery(d)) if !d.hash.is_empty() => {
                Some((d.message_id.as_str(), d.hash.as_str()))
            }
            _ => None,
        })
        .collect();
    let members = hex::decode(to)
        .ok()
        .and_then(|k| n.devnet.swarm_for(&k))
        .map(|(_, m)| m)
        .unwrap_or_default();
    let mut lost: Vec<&&String> = lost.iter().collect();
    lost.sort();
    for text in lost.into_iter().take(20) {
        let hash = sent.get(*text).and_then(|id| hashes.get(id.as_str()));
        let held: Vec<usize> = hash.map_or_else(Vec::new, |h| {
            members
                .iter()
                .copied()
                .filter(|&i| n.devnet.node(i).holds(h))
                .collect()
        });
        eprintln!(
            "lost {text:?}: hash {}, held by members {held:?} of swarm {members:?}",
            hash.copied().unwrap_or("(never sent)")
        );
    }
}

/// The resident set size of process `pid`, in KiB (Linux `/proc`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The number of threads of process `pid` (Linux `/proc`).
pub fn threads(pid: u32) -> u64 {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
