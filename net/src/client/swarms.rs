//! The swarm cache: which snodes store an account, from the cache or asked (`get_swarm`
//! through a path) of any pool node, and corrected by every 421 reply.

use std::future::Future;
use std::pin::Pin;

use session_proto::storage_rpc::{GetSwarmParams, Request, SwarmReply, UserPubkey};

use super::send::{Shape, To};
use super::NetClient;
use crate::err::NetError;
use crate::snode::Snode;

impl NetClient {
    /// The members of `account`'s swarm: from the cache, else asked (through a path) of a
    /// random snode.
    pub async fn swarm(&self, account: &UserPubkey) -> Result<Vec<Snode>, NetError> {
        let r = self.swarm_inner(account).await;
        self.note(r)
    }

    /// The cached swarm of `account`, if any.
    pub fn cached_swarm(&self, account: &UserPubkey) -> Option<Vec<Snode>> {
        self.lock().swarms.get(&account.0).cloned()
    }

    /// Puts `members` in the swarm cache for `account` (e.g. a swarm saved by a previous run).
    /// A wrong one is corrected by the first 421 reply.
    pub fn remember_swarm(&self, account: &UserPubkey, members: Vec<Snode>) {
        self.lock().set_swarm(account.0, members);
    }

    /// [`NetClient::swarm`] boxed: the request loop asks for swarms and the swarm lookup runs
    /// in the request loop, so one of the two futures must be boxed.
    pub(super) fn swarm_boxed<'a>(
        &'a self,
        account: &'a UserPubkey,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Snode>, NetError>> + Send + 'a>> {
        Box::pin(self.swarm_inner(account))
    }

    async fn swarm_inner(&self, account: &UserPubkey) -> Result<Vec<Snode>, NetError> {
        {
            let st = self.lock();
            if let Some(m) = st.swarms.get(&account.0) {
                if m.len() >= self.shared.config.min_swarm_size {
                    return Ok(m.clone());
                }
            }
        }
        let body = Request::GetSwarm(GetSwarmParams { pubkey: *account }).to_json();
        let (node, _, reply) = self
            .send(To::AnyNode, None, Shape::Single, &mut |_, _| body.clone())
            .await?;
        let members = self.parse_swarm(&node, &reply)?;
        self.lock().set_swarm(account.0, members.clone());
        Ok(members)
    }

    /// Parses a `get_swarm` / 421 body from `from`; an unusable one strikes `from`.
    pub(super) fn parse_swarm(&self, from: &Snode, body: &[u8]) -> Result<Vec<Snode>, NetError> {
        let reply: SwarmReply = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return Err(self.bad_reply(from, format!("swarm reply: {e}"))),
        };
        let members: Vec<Snode> = reply
            .snodes
            .iter()
            .filter_map(|s| {
                Snode::from_parts(
                    &s.pubkey_ed25519.to_hex(),
                    &s.pubkey_x25519.to_hex(),
                    &s.ip,
                    s.port_https,
                )
            })
            .collect();
        if members.is_empty() {
            return Err(self.bad_reply(from, "swarm reply lists no usable snode".into()));
        }
        Ok(members)
    }
}
