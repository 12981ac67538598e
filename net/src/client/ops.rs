//! Typed storage operations on an account's swarm, alone or several in one `batch` or
//! `sequence` request (network.md §4.5), each signed with the caller's [`Auth`].

use session_proto::storage_rpc::{
    BatchReply, BatchResult, ExpireMode, Request, RetrieveReply, UserPubkey, BATCH_MAX,
};

use super::send::{Shape, To};
use super::NetClient;
use crate::auth::Auth;
use crate::err::NetError;
use crate::snode::Snode;
use crate::storage::{DeleteOutcome, ExpireOutcome, Op, OpOutcome, StoreOutcome};

impl NetClient {
    /// Stores `data` for `account` in `namespace` with a time to live, through a path to a
    /// member of the account's swarm. Public inboxes (ns % 10 == 0) take [`Auth::None`];
    /// other namespaces need the account's auth.
    pub async fn store(
        &self,
        account: &UserPubkey,
        namespace: i16,
        data: &[u8],
        ttl_ms: u64,
        auth: &Auth,
    ) -> Result<StoreOutcome, NetError> {
        let op = Op::Store {
            namespace,
            data: data.to_vec(),
            ttl_ms,
        };
        match self.request(account, auth, &op).await? {
            OpOutcome::Stored(s) => Ok(s),
            _ => unreachable!("Op::outcome answers a store with Stored"),
        }
    }

    /// Retrieves `account`'s messages in `namespace` after `last_hash`, from a random member
    /// of its swarm. Every returned message's hash is checked against its data. A `last_hash`
    /// is only meaningful on the member that gave it: pollers use [`NetClient::poll`].
    pub async fn retrieve(
        &self,
        account: &UserPubkey,
        namespace: i16,
        last_hash: Option<&str>,
        auth: &Auth,
    ) -> Result<RetrieveReply, NetError> {
        let op = Op::Retrieve {
            namespace,
            last_hash: last_hash.map(str::to_owned),
        };
        match self.request(account, auth, &op).await? {
            OpOutcome::Retrieved(r) => Ok(r),
            _ => unreachable!("Op::outcome answers a retrieve with Retrieved"),
        }
    }

    /// Deletes messages of `account` by hash.
    pub async fn delete(
        &self,
        account: &UserPubkey,
        hashes: &[String],
        auth: &Auth,
    ) -> Result<DeleteOutcome, NetError> {
        let op = Op::Delete {
            hashes: hashes.to_vec(),
        };
        match self.request(account, auth, &op).await? {
            OpOutcome::Deleted(d) => Ok(d),
            _ => unreachable!("Op::outcome answers a delete with Deleted"),
        }
    }

    /// Sets the expiry of messages of `account` (ms since the Unix epoch).
    pub async fn expire(
        &self,
        account: &UserPubkey,
        hashes: &[String],
        expiry_ms: u64,
        mode: ExpireMode,
        auth: &Auth,
    ) -> Result<ExpireOutcome, NetError> {
        let op = Op::Expire {
            hashes: hashes.to_vec(),
            expiry_ms,
            mode,
        };
        match self.request(account, auth, &op).await? {
            OpOutcome::Expired(e) => Ok(e),
            _ => unreachable!("Op::outcome answers an expire with Expired"),
        }
    }

    /// Runs one [`Op`] on `account`'s swarm.
    pub async fn request(
        &self,
        account: &UserPubkey,
        auth: &Auth,
        op: &Op,
    ) -> Result<OpOutcome, NetError> {
        let r = self.request_inner(account, auth, op).await;
        self.note(r)
    }

    /// Runs several [`Op`]s on `account`'s swarm in one `batch` request (the snode runs them
    /// in parallel). The outer error is for the request as a whole (nothing reached the
    /// swarm); each op then has its own result, in order: one failing op does not fail the
    /// others. At most [`BATCH_MAX`] ops.
    pub async fn batch(
        &self,
        account: &UserPubkey,
        auth: &Auth,
        ops: &[Op],
    ) -> Result<Vec<Result<OpOutcome, NetError>>, NetError> {
        let r = self.batch_inner(account, auth, ops, false).await;
        self.note(r)
    }

    /// Like [`NetClient::batch`], but the snode runs the ops in order and stops at the first
    /// failure: the ops after it are [`NetError::NotRun`].
    pub async fn sequence(
        &self,
        account: &UserPubkey,
        auth: &Auth,
        ops: &[Op],
    ) -> Result<Vec<Result<OpOutcome, NetError>>, NetError> {
        let r = self.batch_inner(account, auth, ops, true).await;
        self.note(r)
    }

    async fn request_inner(
        &self,
        account: &UserPubkey,
        auth: &Auth,
        op: &Op,
    ) -> Result<OpOutcome, NetError> {
        // Whether it can be built at all depends only on `auth`: check once, before sending.
        op.to_request(account, auth, 0)?;
        let mut make = |ts: u64, _: &Snode| {
            op.to_request(account, auth, ts)
                .map(|r| r.to_json())
                .unwrap_or_default()
        };
        let to = To::Swarm {
            account,
            prefer: None,
        };
        let (dest, _, body) = self
            .send(to, Some(account), Shape::Single, &mut make)
            .await?;
        op.outcome(account, &dest, &body)
            .map_err(|why| self.bad_reply(&dest, why))
    }

    async fn batch_inner(
        &self,
        account: &UserPubkey,
        auth: &Auth,
        ops: &[Op],
        sequential: bool,
    ) -> Result<Vec<Result<OpOutcome, NetError>>, NetError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        if ops.len() > BATCH_MAX {
            return Err(NetError::BadRequest {
                reason: format!("{} sub-requests; at most {BATCH_MAX}", ops.len()),
            });
        }
        for op in ops {
            op.to_request(account, auth, 0)?;
        }
        let mut make = |ts: u64, _: &Snode| {
            let subs: Vec<Request> = ops
                .iter()
                .filter_map(|op| op.to_request(account, auth, ts).ok())
                .collect();
            if sequential {
                Request::Sequence(subs).to_json()
            } else {
                Request::Batch(subs).to_json()
            }
        };
        let to = To::Swarm {
            account,
            prefer: None,
        };
        let (dest, _, body) = self
            .send(to, Some(account), Shape::Batch, &mut make)
            .await?;
        let results = self.batch_results(&dest, &body, ops.len())?;
        Ok(ops
            .iter()
            .enumerate()
            .map(|(i, op)| match results.get(i) {
                Some(r) => self.sub_result(account, &dest, r, |b| op.outcome(account, &dest, b)),
                None if sequential => Err(NetError::NotRun),
                None => Err(self.bad_reply(&dest, format!("no result for sub-request {i}"))),
            })
            .collect())
    }

    /// Parses a batch reply of at most `asked` results.
    pub(super) fn batch_results(
        &self,
        dest: &Snode,
        body: &[u8],
        asked: usize,
    ) -> Result<Vec<BatchResult>, NetError> {
        let reply: BatchReply = serde_json::from_slice(body)
            .map_err(|e| self.bad_reply(dest, format!("batch reply: {e}")))?;
        if reply.results.len() > asked {
            return Err(self.bad_reply(
                dest,
                format!("{} results for {asked} sub-requests", reply.results.len()),
            ));
        }
        Ok(reply.results)
    }

    /// One sub-request's result: a 2xx body judged by `judge`, or the snode's status as an
    /// error (a 421 also replaces the cached swarm).
    pub(super) fn sub_result<T>(
        &self,
        account: &UserPubkey,
        dest: &Snode,
        r: &BatchResult,
        judge: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, NetError> {
        let body = match &r.body {
            serde_json::Value::String(s) => s.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        };
        match r.code {
            200..=299 => judge(&body).map_err(|why| self.bad_reply(dest, why)),
            421 => {
                if let Ok(members) = self.parse_swarm(dest, &body) {
                    self.lock().set_swarm(account.0, members);
                }
                Err(self.status_error(dest, 421, &body))
            }
            code => Err(self.status_error(dest, code, &body)),
        }
    }
}
