//! Onion requests at a node (`POST /onion_req/v2` and the devnet relay route): peel one layer
//! with session-proto, then answer as the final hop, proxy to a loopback server, or relay to
//! the next node.
//!
//! The wire work (frame, layer crypto, routing JSON, reply sealing) is
//! [`session_proto::onion`]'s; this module holds the node's behaviour: which error becomes
//! which status and text, what is encrypted back to the client, and the devnet's own rules
//! (loopback-only proxying, relays over the devnet-internal route).

use std::sync::Arc;

use bytes::Bytes;
use session_proto::err::OnionError;
use session_proto::onion::{
    open_layer, seal_snode_reply, FinalRequest, OpenedLayer, Peeled, ProxyRequest, RelayHop,
    ReplyHandle,
};

use crate::node::{Body, Event, NodeShared, Origin, RawReply, Reply, PEER_HEADER, TOKEN_HEADER};

/// The devnet-internal header that carries an onion request's [`Entry`] from its guard to the
/// next hops (only on the token-checked relay route; never part of the Session protocol).
pub(crate) const ENTRY_HEADER: &str = "x-devnet-entry";

/// Where an onion request entered the devnet: its guard and the client connection.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The guard's Ed25519 (hex).
    pub(crate) guard: String,
    /// The client connection's address.
    pub(crate) client: std::net::SocketAddr,
}

impl Entry {
    fn encode(&self) -> String {
        format!("{}|{}", self.guard, self.client)
    }

    /// Parses [`Entry::encode`]'s form.
    pub(crate) fn decode(s: &str) -> Option<Entry> {
        let (guard, client) = s.split_once('|')?;
        Some(Entry {
            guard: guard.to_owned(),
            client: client.parse().ok()?,
        })
    }
}

/// The accounts a storage RPC body names (`params.pubkey`, and in each subrequest of a batch
/// or sequence), shortened to their first 10 hex characters.
fn accounts_named(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut take = |params: &serde_json::Value| {
        if let Some(pk) = params.get("pubkey").and_then(|p| p.as_str()) {
            let short: String = pk.chars().take(10).collect();
            if !out.contains(&short) {
                out.push(short);
            }
        }
    };
    let params = &v["params"];
    take(params);
    if let Some(subs) = params.get("requests").and_then(|r| r.as_array()) {
        for sub in subs {
            take(&sub["params"]);
        }
    }
    out
}

fn plain(status: u16, s: impl Into<String>) -> RawReply {
    RawReply {
        status,
        body: Bytes::from(s.into()),
    }
}

/// Hosts an onion request may be proxied to on the devnet.
fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A storage-RPC reply body as bytes (JSON text or the plain-text error).
fn body_bytes(body: &Body) -> Vec<u8> {
    match body {
        Body::Json(v) => v.to_string().into_bytes(),
        Body::Text(s) => s.clone().into_bytes(),
    }
}

impl NodeShared {
    /// Handles one onion layer arriving from `from`.
    pub(crate) async fn handle_onion(
        self: Arc<Self>,
        body: &[u8],
        from: Origin,
        entry: Option<Entry>,
    ) -> RawReply {
        if let (Origin::Client, Some(e)) = (&from, &entry) {
            self.events.push(Event::OnionEntered { client: e.client });
        }
        self.events.push(Event::OnionArrived { from });
        let reply = self.peel_and_act(body, entry).await;
        if let Err(r) = &reply {
            self.events.push(Event::OnionRejected { status: r.status });
        }
        reply.unwrap_or_else(|e| e)
    }

    async fn peel_and_act(
        self: &Arc<Self>,
        body: &[u8],
        entry: Option<Entry>,
    ) -> Result<RawReply, RawReply> {
        // Errors before the layer opens go back in plain text: the node cannot encrypt yet.
        let layer = open_layer(&self.keys.onion, body).map_err(|e| match e {
            OnionError::Decrypt | OnionError::BadPeerKey => plain(400, "Invalid ciphertext"),
            e => plain(400, format!("Error parsing onion request: {e}")),
        })?;
        match layer.classify() {
            Ok(Peeled::Final(req)) => {
                let (method, reply) = self.clone().handle_rpc_body(&req.body, true).await;
                if let Some(e) = entry {
                    self.events.push(Event::OnionTraced {
                        guard: e.guard,
                        client: e.client,
                        method: method.clone(),
                        accounts: accounts_named(&req.body),
                    });
                }
                self.events.push(Event::OnionFinal { method });
                Ok(self.seal(&req, reply))
            }
            Ok(Peeled::Proxy(req)) => Ok(self.proxy(req, &layer).await),
            Ok(Peeled::Relay(hop)) => self.relay(hop, entry).await,
            // Path errors are plain text, as the storage server sends them.
            Err(OnionError::TooManyHops(_)) => {
                Err(plain(400, "onion request max path length exceeded"))
            }
            // From here on the client can be answered under the layer key (the storage server
            // encrypts its 400 for bad inner JSON).
            Err(OnionError::TargetNotAllowed(_)) => {
                Ok(self.seal_error(&layer, Reply::text(400, "Invalid url")))
            }
            Err(_) => Ok(self.seal_error(&layer, Reply::text(400, "Invalid json"))),
        }
    }

    /// The final hop's reply: `{"status","body"}` encrypted to the client (session-proto's
    /// [`seal_snode_reply`]); HTTP 200.
    fn seal(&self, req: &FinalRequest, reply: Reply) -> RawReply {
        let sealed = seal_snode_reply(
            &mut rand::rngs::OsRng,
            req,
            reply.status,
            &body_bytes(&reply.body),
        );
        RawReply {
            status: 200,
            body: Bytes::from(sealed),
        }
    }

    /// An error answered under the layer key, in the default reply form (string body, base64).
    fn seal_error(&self, layer: &OpenedLayer, reply: Reply) -> RawReply {
        let req = FinalRequest {
            body: Vec::new(),
            json: false,
            base64: true,
            reply: ReplyHandle::new(layer.key.clone()),
        };
        self.seal(&req, reply)
    }

    async fn relay(
        self: &Arc<Self>,
        hop: RelayHop,
        entry: Option<Entry>,
    ) -> Result<RawReply, RawReply> {
        let topo = &self.net.topology;
        let Some(next) = topo.find_ed25519(&hop.destination) else {
            return Err(plain(
                502,
                format!("Next node not found: {}", hop.destination_hex()),
            ));
        };
        self.events.push(Event::OnionRelayed {
            to: hop.destination_hex(),
        });
        let url = format!("{}/devnet/v1/onion_relay", topo.url(next));
        let entry = entry.map(|e| e.encode()).unwrap_or_default();
        let mut headers = vec![
            (PEER_HEADER, self.ed_hex.as_str()),
            (TOKEN_HEADER, self.net.token.as_str()),
        ];
        if !entry.is_empty() {
            headers.push((ENTRY_HEADER, entry.as_str()));
        }
        match self
            .net
            .client
            .post_url(&url, &headers, hop.next_body, self.net.relay_timeout)
            .await
        {
            Ok(r) => Ok(RawReply {
                status: r.status,
                body: r.body,
            }),
            // A node that is down looks like a request that never gets an answer.
            Err(_) => Err(plain(504, "Request time out")),
        }
    }

    async fn proxy(self: &Arc<Self>, req: ProxyRequest, layer: &OpenedLayer) -> RawReply {
        if !(req.protocol == "http" || req.protocol == "https") {
            return self.seal_error(layer, Reply::text(400, "Invalid url"));
        }
        let default_port = if req.protocol == "https" { 443 } else { 80 };
        let port = req.port.unwrap_or(default_port);
        let shown_host: String = req.host.chars().take(255).collect();
        if !is_loopback_host(&req.host) {
            return plain(
                502,
                format!("devnet proxies only to loopback hosts, not {shown_host}"),
            );
        }
        self.events.push(Event::OnionProxied {
            target: format!("{shown_host}:{port}"),
        });
        let url = format!("{}://{shown_host}:{port}{}", req.protocol, req.target);
        match self
            .net
            .client
            .post_url(&url, &[], req.plaintext, self.net.proxy_timeout)
            .await
        {
            Ok(r) => RawReply {
                status: r.status,
                body: r.body,
            },
            Err(session_net::TransportError::Timeout { .. }) => plain(504, "Request time out"),
            Err(e) => plain(502, e.to_string()),
        }
    }
}
