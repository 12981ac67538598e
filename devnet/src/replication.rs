//! Swarm replication from a node to its peers, coalesced per peer.
//!
//! A real storage server forwards a recursive request (store, delete, expire, …) to its swarm
//! peers over long-lived OxenMQ connections, where one more message costs next to nothing. The
//! devnet forwards over HTTPS, where each exchange costs a request's framing, TLS records and
//! a task on both ends: forwarded one by one, the 20 stores of a `batch` cost 40 exchanges and
//! concurrent stores to one swarm multiplied the nodes' work. So a node queues what it forwards
//! to each peer and [`MAX_FLUSHERS`] tasks per peer send whatever has queued in one exchange
//! (`POST /devnet/v1/storage_cc_many`, [`encode_bodies`]): one store alone still goes out at
//! once, and everything that arrives while an exchange is in flight goes in the next one. The
//! peer applies them in order, each exactly as a single forwarded request, and answers each
//! one's status and body (what the entry node puts in the `swarm` map is unchanged).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::node::{NodeShared, PEER_HEADER, TOKEN_HEADER};

/// The devnet-internal route that takes several forwarded requests in one body.
pub(crate) const MANY_ROUTE: &str = "/devnet/v1/storage_cc_many";
/// Exchanges in flight to one peer at a time.
const MAX_FLUSHERS: usize = 2;
/// Forwarded requests in one exchange at most.
const MAX_PER_EXCHANGE: usize = 128;

/// A peer's answer to one forwarded request: its status and body; `None` when the exchange
/// failed (timeout, connection).
pub(crate) type Forwarded = Option<(u16, Bytes)>;

struct Pending {
    body: Vec<u8>,
    done: oneshot::Sender<Forwarded>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    flushers: usize,
}

/// A node's queues of requests to forward, one per peer (by node index).
#[derive(Default)]
pub(crate) struct Replicator {
    // std Mutex: held to push or take the queue, never across an await.
    queues: Mutex<HashMap<usize, Queue>>,
}

impl std::fmt::Debug for Replicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicator").finish_non_exhaustive()
    }
}

impl NodeShared {
    /// Forwards the storage-RPC `body` to swarm peer `peer` (joining the exchange that goes
    /// next); its status and body, or `None` if the exchange failed.
    pub(crate) async fn forward(self: &Arc<Self>, peer: usize, body: Vec<u8>) -> Forwarded {
        let (done, answer) = oneshot::channel();
        let spawn = {
            let mut queues = self.replicator.queues.lock().expect("replicator lock");
            let q = queues.entry(peer).or_default();
            q.pending.push(Pending { body, done });
            let spawn = q.flushers < MAX_FLUSHERS;
            if spawn {
                q.flushers += 1;
            }
            spawn
        };
        if spawn {
            // Task "devnet-replicate": sends this peer's queue until it is empty.
            tokio::spawn(self.clone().flush(peer));
        }
        answer.await.ok().flatten()
    }

    async fn flush(self: Arc<Self>, peer: usize) {
        loop {
            let batch: Vec<Pending> = {
                let mut queues = self.replicator.queues.lock().expect("replicator lock");
                let q = queues.entry(peer).or_default();
                if q.pending.is_empty() {
                    q.flushers -= 1;
                    return;
                }
                let n = q.pending.len().min(MAX_PER_EXCHANGE);
                q.pending.drain(..n).collect()
            };
            let (bodies, senders): (Vec<Vec<u8>>, Vec<_>) =
                batch.into_iter().map(|p| (p.body, p.done)).unzip();
            let answers = self.exchange(peer, &bodies).await;
            for (i, done) in senders.into_iter().enumerate() {
                let _ = done.send(answers.as_ref().and_then(|a| a.get(i).cloned()).flatten());
            }
        }
    }

    /// One exchange with `peer`: every body in one request, an answer per body. `None` if
    /// the exchange failed as a whole; a whole-request error status answers each body.
    async fn exchange(&self, peer: usize, bodies: &[Vec<u8>]) -> Option<Vec<Forwarded>> {
        let net = &self.net;
        let url = format!("{}{MANY_ROUTE}", net.topology.url(peer));
        let headers = [
            (PEER_HEADER, self.ed_hex.as_str()),
            (TOKEN_HEADER, net.token.as_str()),
        ];
        let r = net
            .client
            .post_url(
                &url,
                &headers,
                encode_bodies(bodies),
                net.replication_timeout,
            )
            .await
            .ok()?;
        if r.status != 200 {
            let whole = Some((r.status, r.body));
            return Some(vec![whole; bodies.len()]);
        }
        let answers = decode_answers(&r.body)?;
        (answers.len() == bodies.len()).then(|| answers.into_iter().map(Some).collect())
    }
}

/// Bodies framed as `u32 LE length ‖ bytes`, one after another.
pub(crate) fn encode_bodies(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bodies.iter().map(|b| b.len() + 4).sum());
    for b in bodies {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// [`encode_bodies`]'s framing read back; `None` if it is cut short.
pub(crate) fn decode_bodies(mut buf: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (len, rest) = buf.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        let (body, rest) = rest.split_at(len);
        out.push(body);
        buf = rest;
    }
    Some(out)
}

/// Answers framed as `u16 LE status ‖ u32 LE length ‖ bytes`.
pub(crate) fn encode_answers(answers: &[(u16, Bytes)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(answers.iter().map(|(_, b)| b.len() + 6).sum());
    for (status, b) in answers {
        out.extend_from_slice(&status.to_le_bytes());
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

fn decode_answers(buf: &Bytes) -> Option<Vec<(u16, Bytes)>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let head = buf.get(at..at + 6)?;
        let status = u16::from_le_bytes([head[0], head[1]]);
        let len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
        let start = at + 6;
        let end = start.checked_add(len).filter(|&e| e <= buf.len())?;
        out.push((status, buf.slice(start..end)));
        at = end;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips_and_rejects_truncation() {
        let bodies = [b"{\"a\":1}".to_vec(), Vec::new(), vec![7; 300]];
        let enc = encode_bodies(&bodies);
        let dec = decode_bodies(&enc).expect("decodes");
        assert_eq!(dec, bodies.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert!(decode_bodies(&enc[..enc.len() - 1]).is_none());
        assert!(decode_bodies(&[1, 0]).is_none());
        let answers = [(200, Bytes::from_static(b"{}")), (406, Bytes::new())];
        let enc = Bytes::from(encode_answers(&answers));
        assert_eq!(decode_answers(&enc).expect("decodes"), answers);
        assert!(decode_answers(&enc.slice(..enc.len() - 1)).is_none());
    }
}
