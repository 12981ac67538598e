//! Onion sending: the one request loop every snode request runs in, one onion request through
//! one path, and how a destination's reply is judged.
//!
//! The loop ([`NetClient::send`]) picks a destination (a given snode, any pool node, or a
//! member of an account's swarm), sends through a path, and on a failure asks the client's
//! single [`Retry`] budget for another attempt: a path failure retries the same destination on
//! another path, a destination failure retries another member. A 421 replaces the swarm (once
//! per request) and a clock rejection learns the node's time (once per node); neither spends
//! the budget.

use std::collections::HashSet;
use std::time::Instant;

use session_proto::onion::{build_request, Destination, EncType, Hop, SnodeReply};
use session_proto::storage_rpc::{BatchReply, InfoReply, Request, UserPubkey};
use tracing::debug;

use super::{NetClient, TRANSFER_ALLOWANCE_MS_PER_MIB};
use crate::clock::{local_now_ms, NetworkClock};
use crate::err::{reason_text, NetError, TransportError};
use crate::events::{NetEvent, RequestOutcome, RequestTarget};
use crate::path::Path;
use crate::retry::Retry;
use crate::snode::Snode;
use crate::transport::{HttpReply, HttpTarget};

/// A storage-RPC reply from a snode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcReply {
    /// The snode that answered.
    pub node: Snode,
    /// Its storage-RPC status.
    pub status: u16,
    /// Its body (JSON text for 200).
    pub body: Vec<u8>,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum To<'a> {
    /// This snode, whatever happens.
    Snode(&'a Snode),
    /// Any pool node (requests that name no account: `get_swarm`, `info`).
    AnyNode,
    /// A member of `account`'s swarm; `prefer` first while it is a member.
    Swarm {
        /// The account.
        account: &'a UserPubkey,
        /// The member to try first.
        prefer: Option<&'a Snode>,
    },
}

/// What the destination's body is: one reply, or a `batch`/`sequence` of them (a batch whose
/// every sub-request got 421 was sent to the wrong swarm as a whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Single,
    Batch,
}

/// Builds a request body for a network timestamp (ms) and the destination it goes to.
pub(super) type MakeBody<'a> = dyn FnMut(u64, &Snode) -> Vec<u8> + Send + 'a;

/// How a destination's reply is judged.
enum Outcome {
    Ok(Vec<u8>),
    WrongSwarm(Vec<u8>),
    ClockSkew(u16),
    Failed(NetError),
}

impl NetClient {
    /// Sends a storage RPC to `dest` through an onion path (retrying on other paths when the
    /// path fails). A 2xx reply is returned; other statuses become errors. A 421 also
    /// replaces the cached swarm of the account the request names.
    pub async fn onion_rpc(&self, dest: &Snode, request: &Request) -> Result<RpcReply, NetError> {
        let body = request.to_json();
        let account = request.account().copied();
        let r = self
            .send(
                To::Snode(dest),
                account.as_ref(),
                Shape::Single,
                &mut |_, _| body.clone(),
            )
            .await
            .map(|(node, status, body)| RpcReply { node, status, body });
        self.note(r)
    }

    /// The request loop. `account` is the account the request is about (for 421 handling).
    /// Returns the destination that answered, its 2xx status and its body.
    pub(super) async fn send(
        &self,
        to: To<'_>,
        account: Option<&UserPubkey>,
        shape: Shape,
        make: &mut MakeBody<'_>,
    ) -> Result<(Snode, u16, Vec<u8>), NetError> {
        let mut retry = Retry::new(self.shared.retry);
        let mut tried_paths: HashSet<u64> = HashSet::new();
        let mut tried_nodes: HashSet<[u8; 32]> = HashSet::new();
        let mut skew_synced: HashSet<[u8; 32]> = HashSet::new();
        let mut redirected = false;
        let mut same: Option<Snode> = None;
        // Consecutive path failures on the way to the current destination.
        let mut path_failures = 0u32;
        loop {
            self.check_running()?;
            let dest = match same.take() {
                Some(d) => d,
                None => {
                    path_failures = 0;
                    self.destination(to, &tried_nodes).await?
                }
            };
            let started = Instant::now();
            let mut path = None;
            let (outcome, status) =
                match self.onion_once(&dest, make, &tried_paths, &mut path).await {
                    Ok(reply) => {
                        let status = reply.status;
                        (self.judge(&dest, reply, shape), Some(status))
                    }
                    Err(e) => (Outcome::Failed(e), None),
                };
            if let Some(id) = path {
                tried_paths.insert(id);
                let kind = match &outcome {
                    Outcome::Ok(_) => RequestOutcome::Ok,
                    Outcome::Failed(_) if status.is_none() => RequestOutcome::PathFailed,
                    _ => RequestOutcome::Refused,
                };
                self.request_done(id, RequestTarget::Snode, kind, status, started);
            }
            let err = match outcome {
                Outcome::Ok(body) => return Ok((dest, status.unwrap_or(200), body)),
                Outcome::WrongSwarm(body) => {
                    let members = self.parse_swarm(&dest, &body)?;
                    debug!(node = %dest.short(), members = members.len(), "421: swarm replaced");
                    if let Some(a) = account {
                        self.lock().set_swarm(a.0, members);
                    }
                    match to {
                        To::Swarm { .. } if !redirected => {
                            redirected = true;
                            tried_nodes.clear();
                            continue;
                        }
                        To::Swarm { .. } => return Err(NetError::SwarmRedirectLoop),
                        _ => {
                            return Err(NetError::Rejected {
                                node: dest.short(),
                                status: 421,
                                reason: reason_text(&body),
                            })
                        }
                    }
                }
                Outcome::ClockSkew(status) => {
                    if skew_synced.insert(dest.ed25519) {
                        self.sync_clock(&dest).await?;
                        same = Some(dest);
                        continue;
                    }
                    NetError::ClockSkew {
                        node: dest.short(),
                        status,
                    }
                }
                Outcome::Failed(e) => e,
            };
            if !err.is_retryable() {
                return Err(err);
            }
            let Some(wait) = retry.failed() else {
                return Err(err);
            };
            let path_level = matches!(
                err,
                NetError::Transport { .. }
                    | NetError::PathFailed { .. }
                    | NetError::BadReply { .. }
            );
            // A path failure retries the same destination on another path. A swarm request
            // moves on to another member when a second path failed too (the last relay could
            // not reach it) or when no untried path avoids this member.
            if path_level {
                path_failures += 1;
            }
            let fresh_path = {
                let st = self.lock();
                st.paths
                    .iter()
                    .any(|p| !p.contains(&dest.ed25519) && !tried_paths.contains(&p.id))
            };
            let suspect = matches!(to, To::Swarm { .. }) && (path_failures >= 2 || !fresh_path);
            if path_level && !suspect {
                debug!(error = %err, "onion request failed; trying another path");
                same = Some(dest);
            } else {
                debug!(error = %err, node = %dest.short(), "destination failed; trying another");
                path_failures = 0;
                tried_nodes.insert(dest.ed25519);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The next destination for `to`, avoiding `tried` nodes while others are left.
    async fn destination(&self, to: To<'_>, tried: &HashSet<[u8; 32]>) -> Result<Snode, NetError> {
        match to {
            To::Snode(n) => Ok(n.clone()),
            To::AnyNode => {
                self.ensure_pool_for_requests().await?;
                self.random_pool_node(tried)
            }
            To::Swarm { account, prefer } => {
                let members = self.swarm_boxed(account).await?;
                if let Some(p) = prefer {
                    if !tried.contains(&p.ed25519) && members.contains(p) {
                        return Ok(p.clone());
                    }
                }
                let fresh: Vec<&Snode> = members
                    .iter()
                    .filter(|m| !tried.contains(&m.ed25519))
                    .collect();
                let mut rng = rand::thread_rng();
                use rand::seq::SliceRandom as _;
                let pick = if fresh.is_empty() {
                    members.choose(&mut rng)
                } else {
                    fresh.choose(&mut rng).copied()
                };
                pick.cloned().ok_or_else(|| NetError::NoSwarm {
                    reason: "the swarm has no usable member".into(),
                })
            }
        }
    }

    /// Makes sure a pool exists before a request picks a node from it (the client is usable
    /// before [`NetClient::bootstrap`] ran).
    async fn ensure_pool_for_requests(&self) -> Result<(), NetError> {
        self.load_pool();
        if self.lock().pool.len() < crate::config::NetConfig::HOPS + 1 {
            self.ensure_paths(None).await?;
        }
        Ok(())
    }

    /// Learns `node`'s clock with an `info` request through a path (one attempt: this runs
    /// inside the request loop).
    async fn sync_clock(&self, node: &Snode) -> Result<(), NetError> {
        let body = Request::Info.to_json();
        let mut path = None;
        let reply = self
            .onion_once(node, &mut |_, _| body.clone(), &HashSet::new(), &mut path)
            .await?;
        let body = match self.judge(node, reply, Shape::Single) {
            Outcome::Ok(b) => b,
            Outcome::Failed(e) => return Err(e),
            Outcome::WrongSwarm(_) | Outcome::ClockSkew(_) => {
                return Err(self.bad_reply(node, "info refused".into()))
            }
        };
        let info: InfoReply = serde_json::from_slice(&body)
            .map_err(|e| self.bad_reply(node, format!("info reply: {e}")))?;
        let t = if info.t != 0 { info.t } else { info.timestamp };
        self.lock().clock.record(node.ed25519, t, local_now_ms());
        debug!(node = %node.short(), "clock offset learned after a timestamp rejection");
        Ok(())
    }

    /// One onion request to `dest` through one path (not in `avoid` if possible; its id goes
    /// to `used`). Returns the destination's reply whatever its status; path failures strike
    /// the path and become errors.
    async fn onion_once(
        &self,
        dest: &Snode,
        make: &mut MakeBody<'_>,
        avoid: &HashSet<u64>,
        used: &mut Option<u64>,
    ) -> Result<SnodeReply, NetError> {
        let path = self.path_for(Some(dest), avoid).await?;
        *used = Some(path.id);
        let now = {
            let offset = self.lock().clock.offset_for(&dest.ed25519);
            NetworkClock::apply(local_now_ms(), offset)
        };
        let body = make(now, dest);
        let destination = Destination::Snode(Hop::new(dest.x25519, dest.ed25519));
        let request = {
            let mut rng = rand::thread_rng();
            build_request(&mut rng, EncType::AesGcm, &path.hops, &destination, &body).map_err(
                |e| NetError::Onion {
                    reason: e.to_string(),
                },
            )?
        };
        let reply = self.through_path(&path, request.body, None, 0).await?;
        match request.reply.open_snode_reply(&reply.body) {
            Ok(r) => {
                self.lock().path_succeeded(path.id);
                self.record_t(dest, &r.body);
                Ok(r)
            }
            Err(e) => {
                let (cfg, events) = (&self.shared.config, &self.shared.events);
                self.lock()
                    .strike_path(path.id, true, false, cfg, events, "undecryptable reply");
                Err(NetError::BadReply {
                    node: dest.short(),
                    reason: format!("onion reply: {e}"),
                })
            }
        }
    }

    /// POSTs an onion request `body` to `path`'s guard and returns its HTTP 200 reply.
    /// Failures strike the path: an unreachable guard, the guard; a timeout or an error
    /// status, the relays ("Next node not found" drops the named node at once). For a request
    /// to `server`, a 502/504 that names no node is the server's (no strike).
    ///
    /// `transfer_bytes` (a file's size, 0 for ordinary requests) adds
    /// [`TRANSFER_ALLOWANCE_MS_PER_MIB`] per MiB to `onion_timeout_ms`: a timeout sized for
    /// small requests must not cut off an attachment of megabytes crossing three relays.
    pub(super) async fn through_path(
        &self,
        path: &Path,
        body: Vec<u8>,
        server: Option<&str>,
        transfer_bytes: u64,
    ) -> Result<HttpReply, NetError> {
        let guard = path.guard().clone();
        let target = HttpTarget::snode(&guard, "/onion_req/v2");
        let allowance = transfer_bytes.saturating_mul(TRANSFER_ALLOWANCE_MS_PER_MIB) >> 20;
        let timeout = self.ms(self
            .shared
            .config
            .onion_timeout_ms
            .saturating_add(allowance));
        let result = self.shared.transport.post(&target, body, timeout).await;
        let (cfg, events) = (&self.shared.config, &self.shared.events);
        let reply = match result {
            Ok(r) => r,
            Err(source) => {
                // Cannot reach the guard: the guard's fault. A timeout: somewhere on the path.
                let (blame_guard, blame_relays) = match source {
                    TransportError::Timeout { .. } => (false, true),
                    _ => (true, false),
                };
                self.lock().strike_path(
                    path.id,
                    blame_relays,
                    blame_guard,
                    cfg,
                    events,
                    "transport failure",
                );
                return Err(NetError::Transport {
                    node: guard.short(),
                    source,
                });
            }
        };
        if reply.status == 200 {
            return Ok(reply);
        }
        let reason = reason_text(&reply.body);
        let missing = reason.strip_prefix("Next node not found: ").and_then(|h| {
            let mut k = [0u8; 32];
            hex::decode_to_slice(h.trim(), &mut k).ok().map(|_| k)
        });
        match (missing, server) {
            // A relay does not know the named node: drop it at once (desktop does).
            (Some(k), _) => self.lock().drop_node(&k, events, "next node not found"),
            (None, Some(server)) if matches!(reply.status, 502 | 504) => {
                return Err(NetError::ServerUnreachable {
                    server: server.to_owned(),
                    status: reply.status,
                    reason,
                });
            }
            (None, _) => self
                .lock()
                .strike_path(path.id, true, false, cfg, events, "path error"),
        }
        Err(NetError::PathFailed {
            guard: guard.short(),
            status: reply.status,
            reason,
        })
    }

    /// Judges a destination's reply by its storage-RPC status; failures of the destination
    /// strike it.
    fn judge(&self, dest: &Snode, reply: SnodeReply, shape: Shape) -> Outcome {
        let status = reply.status;
        match status {
            200..=299 => match shape {
                Shape::Batch => match all_wrong_swarm(&reply.body) {
                    Some(body) => Outcome::WrongSwarm(body),
                    None => Outcome::Ok(reply.body),
                },
                Shape::Single => Outcome::Ok(reply.body),
            },
            421 => Outcome::WrongSwarm(reply.body),
            406 | 425 => Outcome::ClockSkew(status),
            _ => Outcome::Failed(self.status_error(dest, status, &reply.body)),
        }
    }

    /// The error for a destination's failure status (a 5xx strikes it).
    pub(super) fn status_error(&self, dest: &Snode, status: u16, body: &[u8]) -> NetError {
        let reason = reason_text(body);
        match status {
            406 | 425 => NetError::ClockSkew {
                node: dest.short(),
                status,
            },
            429 => NetError::Busy {
                node: dest.short(),
                status,
                reason,
            },
            500..=599 => {
                let events = &self.shared.events;
                self.lock().strike_node(
                    &dest.ed25519,
                    &self.shared.config,
                    events,
                    "destination error",
                );
                NetError::Busy {
                    node: dest.short(),
                    status,
                    reason,
                }
            }
            _ => NetError::Rejected {
                node: dest.short(),
                status,
                reason,
            },
        }
    }

    /// Counts a request on its path's status and tells the event watchers.
    pub(super) fn request_done(
        &self,
        path: u64,
        target: RequestTarget,
        outcome: RequestOutcome,
        status: Option<u16>,
        started: Instant,
    ) {
        let _ = self.shared.events.send(NetEvent::RequestDone {
            path,
            hops: match target {
                RequestTarget::Snode => 4,
                RequestTarget::Server => 3,
            },
            target,
            outcome,
            status,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
}

/// For a batch reply whose every sub-request got 421: the first one's body (the right swarm).
fn all_wrong_swarm(body: &[u8]) -> Option<Vec<u8>> {
    let reply: BatchReply = serde_json::from_slice(body).ok()?;
    let first = reply.results.first()?;
    if reply.results.iter().all(|r| r.code == 421) {
        serde_json::to_vec(&first.body).ok()
    } else {
        None
    }
}
