//! Member-sticky retrieve: [`NetClient::poll`] reads one account's namespaces from the
//! [`Mailbox`]'s member (or the next member of its sweep), each from that member's own cursor,
//! in one request (a `batch` for several namespaces, as desktop polls its own swarm).

use session_proto::storage_rpc::{Request, UserPubkey, BATCH_MAX};

use super::send::{Shape, To};
use super::NetClient;
use crate::auth::Auth;
use crate::err::NetError;
use crate::mailbox::{Fetched, Mailbox, NamespacePoll, Poll};
use crate::snode::Snode;
use crate::storage::{Op, OpOutcome};

impl NetClient {
    /// Retrieves what is new in `namespaces` (at most [`BATCH_MAX`]) of `mailbox`'s account,
    /// from its sticky member or the next one of its sweep (another one if it failed or left
    /// the swarm), signed with `auth`. Each namespace has its own result; call
    /// [`Mailbox::advance`] with the returned [`Poll`] once its messages are kept. When the
    /// request fails as a whole the mailbox switches member for the next poll.
    pub async fn poll(
        &self,
        mailbox: &mut Mailbox,
        auth: &Auth,
        namespaces: &[i16],
    ) -> Result<Poll, NetError> {
        let r = self.poll_inner(mailbox, auth, namespaces).await;
        if r.is_err() {
            mailbox.switch_member();
        }
        self.note(r)
    }

    async fn poll_inner(
        &self,
        mailbox: &Mailbox,
        auth: &Auth,
        namespaces: &[i16],
    ) -> Result<Poll, NetError> {
        if namespaces.is_empty() || namespaces.len() > BATCH_MAX {
            return Err(NetError::BadRequest {
                reason: format!("{} namespaces; 1 to {BATCH_MAX}", namespaces.len()),
            });
        }
        let account: UserPubkey = *mailbox.account();
        let single = namespaces.len() == 1;
        let mut make = |ts: u64, dest: &Snode| {
            let mut subs: Vec<Request> = namespaces
                .iter()
                .filter_map(|&namespace| {
                    let last_hash = mailbox.last_hash(namespace, dest).map(str::to_owned);
                    let op = Op::Retrieve {
                        namespace,
                        last_hash,
                    };
                    op.to_request(&account, auth, ts).ok()
                })
                .collect();
            match subs.pop() {
                Some(only) if single => only.to_json(),
                Some(last) => {
                    subs.push(last);
                    Request::Batch(subs).to_json()
                }
                None => Vec::new(),
            }
        };
        let to = To::Swarm {
            account: &account,
            prefer: mailbox.target(),
        };
        let shape = if single { Shape::Single } else { Shape::Batch };
        let (member, _, body) = self.send(to, Some(&account), shape, &mut make).await?;
        let at_ms = self.network_now_ms();
        let judge = |namespace: i16, body: &[u8]| -> Result<Fetched, String> {
            let op = Op::Retrieve {
                namespace,
                last_hash: None,
            };
            match op.outcome(&account, &member, body)? {
                OpOutcome::Retrieved(r) => Ok(mailbox.sort_out(namespace, r.messages, r.more)),
                _ => unreachable!("Op::outcome answers a retrieve with Retrieved"),
            }
        };
        let results = if single {
            let ns = namespaces[0];
            let result = judge(ns, &body).map_err(|why| self.bad_reply(&member, why));
            vec![NamespacePoll {
                namespace: ns,
                result,
            }]
        } else {
            let results = self.batch_results(&member, &body, namespaces.len())?;
            namespaces
                .iter()
                .enumerate()
                .map(|(i, &ns)| NamespacePoll {
                    namespace: ns,
                    result: match results.get(i) {
                        Some(r) => self.sub_result(&account, &member, r, |b| judge(ns, b)),
                        None => Err(self.bad_reply(&member, format!("no result for ns {ns}"))),
                    },
                })
                .collect()
        };
        let swarm = self.cached_swarm(&account).unwrap_or_default();
        Ok(Poll {
            member,
            namespaces: results,
            at_ms,
            swarm,
        })
    }
}
