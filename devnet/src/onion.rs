//! Onion requests at a node (`POST /onion_req/v2` and the devnet relay route): peel one layer,
//! then answer as the final hop, proxy to a loopback server, or relay to the next node.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use x25519_dalek::PublicKey;

use crate::node::{Body, Event, NodeShared, Origin, RawReply, Reply, PEER_HEADER, TOKEN_HEADER};
use crate::wire::{self, EncType, HopKey, B64};

/// Highest hop number a relayed layer may carry (400 above it).
pub const MAX_ONION_HOPS: i64 = 15;

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

/// The real server's rule: `/oxen/…` or `/loki/…`, ending `/lsrpc`, no query.
fn is_target_allowed(target: &str) -> bool {
    (target.starts_with("/oxen/") || target.starts_with("/loki/"))
        && target.ends_with("/lsrpc")
        && !target.contains('?')
}

impl NodeShared {
    /// Handles one onion layer arriving from `from`.
    pub(crate) async fn handle_onion(self: Arc<Self>, body: &[u8], from: Origin) -> RawReply {
        self.events.push(Event::OnionArrived { from: from.clone() });
        let reply = self.peel_and_act(body, &from).await;
        if let Err(r) = &reply {
            self.events.push(Event::OnionRejected { status: r.status });
        }
        reply.unwrap_or_else(|e| e)
    }

    async fn peel_and_act(
        self: &Arc<Self>,
        body: &[u8],
        from: &Origin,
    ) -> Result<RawReply, RawReply> {
        let parse_err =
            |e: &dyn std::fmt::Display| plain(400, format!("Error parsing onion request: {e}"));
        let (ciphertext, meta) = wire::parse_frame(body).map_err(|e| parse_err(&e))?;
        let meta: Map<String, Value> = match serde_json::from_slice(meta) {
            Ok(Value::Object(m)) => m,
            _ => return Err(parse_err(&"metadata is not a JSON object")),
        };
        let eph_hex = meta
            .get("ephemeral_key")
            .and_then(Value::as_str)
            .ok_or_else(|| parse_err(&"missing ephemeral_key"))?;
        let eph = wire::key_from_hex("ephemeral_key", eph_hex).map_err(|e| parse_err(&e))?;
        let enc = match meta.get("enc_type") {
            None => EncType::AesGcm,
            Some(Value::String(s)) => EncType::parse(s).map_err(|e| parse_err(&e))?,
            Some(_) => return Err(parse_err(&"enc_type must be a string")),
        };
        let hop_no = meta
            .get("hop_no")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .max(0);
        if matches!(from, Origin::Node(_)) && hop_no > MAX_ONION_HOPS {
            return Err(plain(400, "onion request max path length exceeded"));
        }

        let key = HopKey::derive(
            enc,
            &self.keys.x_secret,
            &PublicKey::from(eph),
            &eph,
            &self.keys.x25519,
        );
        let plaintext = key
            .decrypt(ciphertext)
            .map_err(|_| plain(400, "Invalid ciphertext"))?;

        // From here on, errors about the inner content go back encrypted (as the real server
        // does for bad inner JSON).
        let parsed =
            wire::parse_frame(&plaintext).ok().and_then(
                |(blob, json)| match serde_json::from_slice::<Value>(json) {
                    Ok(Value::Object(m)) => Some((blob, m)),
                    _ => None,
                },
            );
        let Some((blob, inner)) = parsed else {
            return Ok(self.wrap_final(&key, Reply::text(400, "Invalid json"), false, true));
        };

        if inner.contains_key("headers") {
            let want_json = inner.get("json").and_then(Value::as_bool).unwrap_or(false);
            let want_b64 = inner.get("base64").and_then(Value::as_bool).unwrap_or(true);
            let (method, reply) = self.clone().handle_rpc_body(blob, true).await;
            self.events.push(Event::OnionFinal { method });
            return Ok(self.wrap_final(&key, reply, want_json, want_b64));
        }
        if let Some(host) = inner.get("host").and_then(Value::as_str) {
            return Ok(self.proxy(host, &inner, plaintext.clone(), &key).await);
        }
        let Some(dest_hex) = inner.get("destination").and_then(Value::as_str) else {
            return Ok(self.wrap_final(&key, Reply::text(400, "Invalid json"), false, true));
        };
        self.relay(dest_hex, &inner, blob, hop_no).await
    }

    /// The final hop's reply: `{"status","body"}` encrypted to the client, base64 unless asked
    /// otherwise; HTTP 200.
    fn wrap_final(&self, key: &HopKey, reply: Reply, want_json: bool, want_b64: bool) -> RawReply {
        let body = match reply.body {
            Body::Json(v) if want_json => v,
            Body::Json(v) => Value::String(v.to_string()),
            Body::Text(s) => Value::String(s),
        };
        let plaintext = json!({"status": reply.status, "body": body}).to_string();
        let ct = key.encrypt(plaintext.as_bytes(), &mut rand::rngs::OsRng);
        let body = if want_b64 {
            Bytes::from(B64.encode(ct))
        } else {
            Bytes::from(ct)
        };
        RawReply { status: 200, body }
    }

    async fn relay(
        self: &Arc<Self>,
        dest_hex: &str,
        inner: &Map<String, Value>,
        blob: &[u8],
        hop_no: i64,
    ) -> Result<RawReply, RawReply> {
        let topo = &self.net.topology;
        let Some(next) = wire::key_from_hex("destination", dest_hex)
            .ok()
            .and_then(|k| topo.find_ed25519(&k))
        else {
            let shown: String = dest_hex.chars().take(64).collect();
            return Err(plain(502, format!("Next node not found: {shown}")));
        };
        let (Some(eph), enc) = (
            inner.get("ephemeral_key").and_then(Value::as_str),
            inner
                .get("enc_type")
                .and_then(Value::as_str)
                .unwrap_or("aes-gcm"),
        ) else {
            return Err(plain(
                400,
                "Error parsing onion request: missing ephemeral_key for next hop",
            ));
        };
        let meta = json!({"ephemeral_key": eph, "enc_type": enc, "hop_no": hop_no + 1});
        let body = wire::frame(blob, meta.to_string().as_bytes());
        let to = hex::encode(topo.nodes()[next].ed25519);
        self.events.push(Event::OnionRelayed { to });
        let url = format!("{}/devnet/v1/onion_relay", topo.url(next));
        let headers = [
            (PEER_HEADER, self.ed_hex.as_str()),
            (TOKEN_HEADER, self.net.token.as_str()),
        ];
        match self
            .net
            .client
            .post(&url, &headers, body, self.net.relay_timeout)
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

    async fn proxy(
        self: &Arc<Self>,
        host: &str,
        inner: &Map<String, Value>,
        plaintext: Vec<u8>,
        key: &HopKey,
    ) -> RawReply {
        let target = inner.get("target").and_then(Value::as_str).unwrap_or("");
        let protocol = inner
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("https");
        if !(protocol == "http" || protocol == "https") || !is_target_allowed(target) {
            return self.wrap_final(key, Reply::text(400, "Invalid url"), false, true);
        }
        let default_port = if protocol == "https" { 443 } else { 80 };
        let port = inner
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(default_port);
        let shown_host: String = host.chars().take(255).collect();
        if !is_loopback_host(host) {
            return plain(
                502,
                format!("devnet proxies only to loopback hosts, not {shown_host}"),
            );
        }
        self.events.push(Event::OnionProxied {
            target: format!("{shown_host}:{port}"),
        });
        let url = format!("{protocol}://{shown_host}:{port}{target}");
        match self
            .net
            .client
            .post(&url, &[], plaintext, self.net.proxy_timeout)
            .await
        {
            Ok(r) => RawReply {
                status: r.status,
                body: r.body,
            },
            Err(crate::err::DevnetError::Timeout { .. }) => plain(504, "Request time out"),
            Err(e) => plain(502, e.to_string()),
        }
    }
}
