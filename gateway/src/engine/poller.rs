//! Pollers: one task per identity that retrieves its namespace-0 messages from its swarm,
//! decrypts and verifies them, records the visible ones (dedupe by hash, events and cursor in one
//! transaction) and passes typing notices on live (never stored); and the supervisor that starts
//! and stops them as identities come and go (and prunes the store's old message hashes and
//! idempotency keys hourly). Control messages (reactions, unsend requests, read receipts, timer
//! updates, message request responses, data-extraction notices) are recorded as their own
//! events ([`Inbound`]); malformed or forbidden ones (an unsend by someone who is not the
//! author, an absurd timer) as `Ignored` notices with the reason. Other contents (calls, empty
//! contents…) are skipped, the cursor moving past them.
//!
//! Each poll first pulls the identity's config namespaces from the same member
//! ([`super::configsync`]), then namespace 0.
//!
//! The interval adapts: `poll.active_interval_ms` while messages flow (either way), then
//! `poll.idle_interval_ms` after `poll.idle_after_secs` without any, and
//! `poll.dormant_interval_ms` after `poll.dormant_after_secs`. Many identities: each poller starts
//! at a random point of its first interval and every wait is jittered (±10 %), so their polls
//! spread out, and every poll takes a request from the shared budget
//! (`poll.max_requests_per_sec`, [`super::budget`]) before it goes out.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_net::{Auth, Mailbox, NetError};
use session_proto::account_id::{AccountId, Prefix};
use session_proto::interaction::{self, Extraction, Interaction};
use session_proto::keys::IdentityKeys;
use session_proto::message::{self, ContentKind, SenderKeys, TYPING_TTL_MS};
use session_proto::storage_rpc::{RetrievedMessage, UserPubkey};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::Ctx;
use crate::metrics::RequestKind;
use crate::rpc::now_ms;
use crate::store::{
    ExpirySetting, IdentityId, IdentityRecord, Inbound, InboundKind, MessageExtras, NoticeKind,
    Received, ReplyRef, StoreError, TypingNotice,
};

/// The namespace one-to-one messages arrive in.
const NAMESPACE: i16 = 0;
/// What each poll reads in one batch: the user configs (UserProfile, Contacts,
/// ConvoInfoVolatile, UserGroups), the account's device-group keys outbox (−21, only read),
/// then the messages.
const POLLED_NAMESPACES: [i16; 6] = [
    2,
    3,
    4,
    5,
    super::configsync::DEVICE_KEYS_NAMESPACE,
    NAMESPACE,
];
/// What an [`Opened::Unreadable`] event says.
pub const V2_REASON: &str = "sent in the new \"v2\" format for the account's device group, \
                             which sessiond cannot read yet; read it on your other device";
/// How often the supervisor re-reads the identities without a wake-up (a safety net).
const RESCAN: Duration = Duration::from_secs(30);
/// How often the supervisor prunes old message hashes and idempotency keys ([`Store::prune`]);
/// the first time at start-up.
///
/// [`Store::prune`]: crate::store::Store::prune
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Clock skew tolerated when judging whether a typing notice is stale, ms.
const TYPING_SKEW_MS: u64 = 60_000;
/// Hashes of typing notices passed on, remembered per poller so a full re-read (a restart's
/// first poll) does not replay them; a notice lives 20 s, so a few dozen cover any burst.
const TYPING_SEEN: usize = 64;

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The supervisor: keeps one poller per identity until `stop` turns true.
pub async fn supervise(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut running: HashMap<IdentityId, Running> = HashMap::new();
    let mut pruned_at: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(Instant::now());
            match ctx.blocking(|s| s.prune(now_ms())).await {
                Ok(p) => tracing::debug!(
                    seen_hashes = p.seen_hashes,
                    idempotency_keys = p.idempotency_keys,
                    "pruned"
                ),
                Err(e) => tracing::warn!(cause = %e, "cannot prune old hashes and keys"),
            }
        }
        match ctx.blocking(|s| s.identities()).await {
            Ok(records) => reconcile(&ctx, &mut running, records).await,
            Err(e) => tracing::warn!(cause = %e, "cannot list identities for polling"),
        }
        tokio::select! {
            _ = stop.changed() => break,
            () = ctx.identities_changed.notified() => {}
            () = tokio::time::sleep(RESCAN) => {}
        }
    }
    for (_, r) in running.drain() {
        let _ = r.stop.send(true);
        let _ = r.task.await;
    }
}

async fn reconcile(
    ctx: &Arc<Ctx>,
    running: &mut HashMap<IdentityId, Running>,
    records: Vec<IdentityRecord>,
) {
    let wanted: HashMap<IdentityId, IdentityRecord> =
        records.into_iter().map(|r| (r.id, r)).collect();
    let gone: Vec<IdentityId> = running
        .keys()
        .filter(|id| !wanted.contains_key(id))
        .copied()
        .collect();
    for id in gone {
        if let Some(r) = running.remove(&id) {
            let _ = r.stop.send(true);
            let _ = r.task.await;
        }
        ctx.activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        ctx.local_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, i| *i != id);
        tracing::debug!(identity = id, "poller stopped");
    }
    for (id, record) in wanted {
        if running.get(&id).is_some_and(|r| !r.task.is_finished()) {
            continue;
        }
        let name = record.name.clone();
        let seed = match ctx.blocking(move |s| s.identity_seed(&name)).await {
            Ok(seed) => seed,
            Err(e) => {
                tracing::warn!(identity = %record.name, cause = %e, "cannot load a seed to poll");
                continue;
            }
        };
        let keys = Arc::new(IdentityKeys::from_seed(&seed));
        let nudge = Arc::new(Notify::new());
        ctx.activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::clone(&nudge));
        ctx.local_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(record.account_id.clone(), id);
        let (stop, stop_rx) = watch::channel(false);
        // Task "poller/<identity>": owned by the supervisor (in `running`), stopped through
        // `stop` when the identity goes or the daemon stops.
        let task = tokio::spawn(poll_loop(Arc::clone(ctx), record, keys, nudge, stop_rx));
        running.insert(id, Running { stop, task });
        tracing::debug!(identity = id, "poller started");
    }
}

/// What one retrieved message is to the poller.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    /// A visible message: recorded as an `Incoming` event.
    Message(Received),
    /// A control message: recorded as its own event.
    Inbound(Inbound),
    /// A typing notice: passed on live, never recorded.
    Typing {
        /// Who is typing.
        sender: String,
        /// True: started. False: stopped.
        typing: bool,
    },
    /// A group control message sent one-to-one (an invitation, a promotion).
    GroupUpdate {
        /// Its sender.
        sender: AccountId,
        /// Its Envelope timestamp (what admin signatures cover).
        ts: u64,
        /// The update.
        update: Box<session_proto::protos::GroupUpdateMessage>,
    },
    /// A message in the new "v2" format (identity-and-messages §3.9): it cannot be read here,
    /// and is recorded as such rather than dropped.
    Unreadable,
    /// Nothing to record: undecryptable, not for us, stale, or not a visible message.
    Skip,
}

/// Decrypts and verifies one retrieved message and sorts it ([`message::classify`]); reasons
/// to skip it are logged at debug. A typing notice older than its 20 s TTL (give or take a
/// minute of clock skew; a full re-read can return one) is stale and skipped.
pub fn open(keys: &IdentityKeys, m: &RetrievedMessage, now_ms: u64) -> Opened {
    open_with(keys, &mut SenderKeys::new(), m, now_ms)
}

/// [`open`] with the poller's cache of senders' checked keys.
pub fn open_with(
    keys: &IdentityKeys,
    senders: &mut SenderKeys,
    m: &RetrievedMessage,
    now_ms: u64,
) -> Opened {
    // v2 (PFS + post-quantum) messages start 0x00 0x02 and are stored without the v1 wrapping.
    if m.data.0.starts_with(&[0x00, 0x02]) {
        return Opened::Unreadable;
    }
    let incoming = match message::decrypt_message_with(keys, &m.data.0, senders) {
        Ok(i) => i,
        Err(e) => {
            tracing::debug!(cause = %e, "skipping an undecryptable message");
            return Opened::Skip;
        }
    };
    if let Some(update) = incoming
        .content
        .data_message
        .as_ref()
        .and_then(|d| d.group_update_message.clone())
    {
        return Opened::GroupUpdate {
            sender: incoming.sender,
            ts: incoming.envelope_timestamp,
            update: Box::new(update),
        };
    }
    match message::classify(&incoming.content) {
        ContentKind::Visible => {}
        ContentKind::Typing {
            started,
            timestamp_ms,
        } => {
            let sent = timestamp_ms.max(incoming.envelope_timestamp);
            if now_ms.saturating_sub(sent) > TYPING_TTL_MS + TYPING_SKEW_MS {
                tracing::debug!("skipping a stale typing notice");
                return Opened::Skip;
            }
            return Opened::Typing {
                sender: incoming.sender.to_string(),
                typing: started,
            };
        }
        ContentKind::Hidden(what) => {
            tracing::debug!(what, "not a visible message");
        }
    }
    let interpreted = interaction::interpret(&incoming.sender, &incoming.content);
    let sender = incoming.sender.to_string();
    let inbound = |what: InboundKind| {
        Opened::Inbound(Inbound {
            hash: m.hash.clone(),
            sender: sender.clone(),
            conversation: sender.clone(),
            sent_at_ms: incoming.envelope_timestamp,
            what,
        })
    };
    let own = &incoming.sender == keys.account_id();
    let (reply_to, expiry) = match interpreted {
        Ok(Some(Interaction::Message {
            reply_to,
            expiry,
            expiry_refused,
            ..
        })) => {
            if let Some(why) = expiry_refused {
                tracing::debug!(why, "recording a message without its timer");
            }
            (reply_to, expiry)
        }
        // Control messages from the account's other devices are not applied here.
        Ok(Some(_)) | Err(_) if own => return Opened::Skip,
        Ok(Some(Interaction::Reaction {
            target,
            emoji,
            remove,
        })) => {
            return inbound(InboundKind::Reaction {
                target_sent_at_ms: target.sent_at_ms,
                target_author: target.author,
                emoji,
                remove,
            })
        }
        Ok(Some(Interaction::Unsend { target_sent_at_ms })) => {
            return inbound(InboundKind::Unsend { target_sent_at_ms })
        }
        Ok(Some(Interaction::ReadReceipt { sent_at_ms })) => {
            return inbound(InboundKind::ReadReceipt { sent_at_ms })
        }
        Ok(Some(Interaction::TimerUpdate { expiry })) => {
            return inbound(InboundKind::Timer {
                expiry: expiry.map(ExpirySetting::from_protocol),
            })
        }
        Ok(Some(Interaction::RequestResponse { approved })) => {
            return inbound(InboundKind::Notice(if approved {
                NoticeKind::RequestAccepted
            } else {
                NoticeKind::RequestDeclined
            }))
        }
        Ok(Some(Interaction::Extraction { kind })) => {
            return inbound(InboundKind::Notice(match kind {
                Extraction::Screenshot => NoticeKind::Screenshot,
                Extraction::MediaSaved => NoticeKind::MediaSaved,
            }))
        }
        Ok(None) => return Opened::Skip,
        Err(why) => {
            return inbound(InboundKind::Notice(NoticeKind::Ignored {
                reason: why.to_owned(),
            }))
        }
    };
    let Some(data) = incoming.content.data_message else {
        return Opened::Skip;
    };
    let sync_target = match sync_target(keys, &incoming.sender, data.sync_target.as_deref()) {
        Ok(t) => t,
        Err(why) => {
            tracing::debug!(why, "skipping a sync copy");
            return Opened::Skip;
        }
    };
    let conversation = sync_target
        .clone()
        .unwrap_or_else(|| incoming.sender.to_string());
    let (attachments, pointers) = data
        .attachments
        .iter()
        .map(|p| crate::files::incoming_view(p, &conversation, sync_target.is_some()))
        .unzip();
    Opened::Message(Received {
        sender: incoming.sender.to_string(),
        conversation: None,
        text: data.body.unwrap_or_default(),
        sent_at_ms: incoming.envelope_timestamp,
        received_at_ms: now_ms,
        hash: m.hash.clone(),
        sender_profile_name: data
            .profile
            .and_then(|p| p.display_name)
            .filter(|n| !n.is_empty()),
        sync_target,
        extras: MessageExtras {
            reply_to: reply_to.map(ReplyRef::from),
            expiry: expiry.map(ExpirySetting::from_protocol),
            expires_at_ms: None,
        },
        attachments,
        pointers,
        server_id: None,
        edited_at_ms: None,
    })
}

/// Puts one batch's messages in the order their senders sent them: envelope timestamp, then
/// hash (a fixed tie-break). A swarm returns them in the order they were stored, which for two
/// messages sent close together can be the reverse; recording them sorted lets IRC and stream
/// readers see them in send order.
pub fn in_send_order(received: &mut [Received]) {
    received.sort_by(|a, b| (a.sent_at_ms, &a.hash).cmp(&(b.sent_at_ms, &b.hash)));
}

/// The conversation a sync copy belongs to (identity-and-messages §3.7): a message with
/// `syncTarget` set is one the account itself sent from another device, to that Account ID.
/// Only the account itself writes sync copies, and only of one-to-one messages to someone else
/// (groups are not handled here); anything else is skipped, with the reason.
fn sync_target(
    keys: &IdentityKeys,
    sender: &AccountId,
    target: Option<&str>,
) -> Result<Option<String>, &'static str> {
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if sender != keys.account_id() {
        return Err("a sync copy from someone else than the account");
    }
    match target.parse::<AccountId>() {
        Ok(id) if id.prefix() == Some(Prefix::Standard) && &id != keys.account_id() => {
            Ok(Some(id.to_string()))
        }
        Ok(_) => Err("a sync copy not of a one-to-one message to someone else"),
        Err(_) => Err("a sync copy whose target is not an Account ID"),
    }
}

async fn poll_loop(
    ctx: Arc<Ctx>,
    record: IdentityRecord,
    keys: Arc<IdentityKeys>,
    nudge: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let account = UserPubkey(*keys.account_id().as_bytes());
    let active = Duration::from_millis(ctx.poll.active_interval_ms);
    let idle = Duration::from_millis(ctx.poll.idle_interval_ms);
    let idle_after = Duration::from_secs(ctx.poll.idle_after_secs);
    let dormant = Duration::from_millis(ctx.poll.dormant_interval_ms);
    let dormant_after = Duration::from_secs(ctx.poll.dormant_after_secs);
    let mut last_activity = Instant::now();
    let mut cursor = Cursor::new(account, Auth::Account(keys.signing_key().clone()));
    let mut groups = super::groups::GroupCursors::default();
    let config_edit = ctx.sync.waker(record.id);
    // Pollers started together (a daemon's start) begin spread over the first interval.
    let mut wait = active.mul_f64(rand::random::<f64>());
    loop {
        // The wait for this poll: the interval (or a nudge), then a turn in the shared budget.
        tokio::select! {
            _ = stop.changed() => break,
            () = nudge.notified() => last_activity = Instant::now(),
            () = config_edit.notified() => last_activity = Instant::now(),
            () = tokio::time::sleep(wait) => {}
        }
        let turn = ctx.poll_budget.reserve();
        if !turn.is_zero() {
            tokio::select! {
                _ = stop.changed() => break,
                () = tokio::time::sleep(turn) => {}
            }
        }
        if *stop.borrow() {
            break;
        }
        let mut again = false;
        // Boxed: a poll's futures (onion requests, retries, decryption) are large and live
        // only while it runs; inline they would make every sleeping poller's task as large
        // (a thousand identities are a thousand tasks that mostly sleep).
        let polled = Box::pin(poll_once(&ctx, &record, &keys, &mut cursor)).await;
        match Box::pin(groups.poll_all(&ctx.net, &ctx.store, record.id, &keys)).await {
            Ok(g) => {
                if g.new > 0 {
                    last_activity = Instant::now();
                }
                again |= g.more;
                if let Some(files) = &ctx.files {
                    files.after_received(record.id, &g.received);
                }
                ctx.metrics.messages_received(g.received.len());
                for rec in &g.changed {
                    if let Some(edit) = super::configsync::group_edit(rec) {
                        ctx.sync.edit(record.id, edit);
                    }
                }
            }
            Err(StoreError::UnknownIdentity { .. }) => break,
            Err(e) => tracing::debug!(identity = %record.name, cause = %e, "group polls failed"),
        }
        if !matches!(
            polled,
            Err(PollError::Net(NetError::Shutdown)) | Err(PollError::Gone)
        ) {
            ctx.metrics.poll_round(polled.is_ok());
        }
        match polled {
            Ok(Polled { got, more }) => {
                if got > 0 {
                    last_activity = Instant::now();
                }
                again |= more;
            }
            Err(PollError::Net(NetError::Shutdown)) => break,
            Err(PollError::Gone) => break,
            Err(e) => tracing::debug!(identity = %record.name, cause = %e, "poll failed"),
        }
        if !again && last_activity.elapsed() >= idle_after {
            cursor.park_configs();
        }
        wait = if again {
            Duration::ZERO
        } else {
            super::budget::jitter(interval(
                last_activity.elapsed(),
                (idle_after, dormant_after),
                (active, idle, dormant),
            ))
        };
    }
}

/// The interval after `quiet` without messages: active, then idle after `after.0`, then dormant
/// after `after.1`.
fn interval(
    quiet: Duration,
    after: (Duration, Duration),
    (active, idle, dormant): (Duration, Duration, Duration),
) -> Duration {
    if quiet < after.0 {
        active
    } else if quiet < after.1 {
        idle
    } else {
        dormant
    }
}

struct Polled {
    got: usize,
    more: bool,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum PollError {
    #[error(transparent)]
    Net(NetError),
    #[error(transparent)]
    Engine(super::EngineError),
    #[error("the identity was removed")]
    Gone,
}

pub(super) fn engine_err(e: super::EngineError) -> PollError {
    match e {
        super::EngineError::Store(StoreError::UnknownIdentity { .. }) => PollError::Gone,
        other => PollError::Engine(other),
    }
}

/// Where a poller reads from: session-net's member-sticky [`Mailbox`] (a cursor per swarm
/// member, nothing skipped or repeated when the member changes; after a change it sweeps the
/// other members once, so a message the new member missed is still read) and the identity's
/// auth. A restart starts with a full read; its repeats are dropped by the store's hash dedupe.
struct Cursor {
    mailbox: Mailbox,
    auth: Auth,
    /// The newest [`TYPING_SEEN`] typing notices' hashes (typing notices are not recorded, so
    /// the store's hash dedupe does not cover them).
    typing_seen: VecDeque<String>,
    /// The identity's configs (loaded for a poll; let go once the identity is idle and they
    /// are saved and pushed, see [`Cursor::park_configs`]).
    configs: Option<super::configsync::Configs>,
    /// What the configs' next load needs to know since start, while they are let go.
    parked: super::configsync::Parked,
    /// Senders' keys that passed decrypt's checks (they are not checked again).
    senders: SenderKeys,
}

impl Cursor {
    fn new(account: UserPubkey, auth: Auth) -> Cursor {
        Cursor {
            mailbox: Mailbox::new(account),
            auth,
            typing_seen: VecDeque::new(),
            configs: None,
            parked: Default::default(),
            senders: SenderKeys::new(),
        }
    }

    /// Lets the configs go until the next poll if nothing of theirs is unsaved or unpushed:
    /// an idle or dormant poller (most of a thousand identities) then holds no parsed configs
    /// between polls, only the flags.
    fn park_configs(&mut self) {
        match self.configs.take() {
            Some(c) if c.parkable() => self.parked = c.park(),
            kept => self.configs = kept,
        }
    }

    /// True the first time a typing notice's hash is seen.
    fn first_typing(&mut self, hash: &str) -> bool {
        if self.typing_seen.iter().any(|h| h == hash) {
            return false;
        }
        if self.typing_seen.len() == TYPING_SEEN {
            self.typing_seen.pop_front();
        }
        self.typing_seen.push_back(hash.to_owned());
        true
    }
}

async fn poll_once(
    ctx: &Ctx,
    record: &IdentityRecord,
    keys: &Arc<IdentityKeys>,
    cursor: &mut Cursor,
) -> Result<Polled, PollError> {
    let id = record.id;
    // One batch request: the config namespaces, then the messages (configs are merged first,
    // as desktop does, so names are known when the messages are recorded).
    let started = Instant::now();
    let poll = ctx
        .net
        .isolated(record.id)
        .poll(&mut cursor.mailbox, &cursor.auth, &POLLED_NAMESPACES)
        .await;
    ctx.metrics
        .onion_request(RequestKind::Retrieve, ctx.hops(), started, &poll);
    let poll = poll.map_err(PollError::Net)?;
    // Parked configs stay parked through a poll that has nothing for them (a quiet
    // identity's usual poll): no load, no parse.
    let wanted = !cursor.parked.settled(now_ms())
        || ctx.sync.has_edits(id)
        || super::configsync::brings_configs(&poll);
    if cursor.configs.is_none() && wanted {
        let seed_keys = Arc::clone(keys);
        let parked = cursor.parked.clone();
        let loaded = ctx
            .blocking(move |s| super::configsync::Configs::unpark(s, id, &seed_keys, parked))
            .await
            .map_err(engine_err)?;
        cursor.configs = Some(loaded);
    }
    match cursor.configs.as_mut() {
        Some(configs) => {
            super::configsync::absorb(ctx, record, configs, &poll).await?;
            let account = *cursor.mailbox.account();
            super::configsync::push(ctx, record, configs, &account, &cursor.auth).await?;
            super::configsync::refresh(ctx, record, configs, &account, &cursor.auth).await?;
        }
        None => super::configsync::device_keys(ctx, id, &poll),
    }
    let ours = poll.namespaces.iter().find(|ns| ns.namespace == NAMESPACE);
    let fetched = match ours.map(|ns| &ns.result) {
        Some(Ok(f)) => f.clone(),
        Some(Err(e)) => return Err(PollError::Net(e.clone())),
        None => {
            return Ok(Polled {
                got: 0,
                more: false,
            })
        }
    };
    let Some(last) = fetched.last_hash.clone() else {
        cursor.mailbox.advance(&poll);
        return Ok(Polled {
            got: 0,
            more: false,
        });
    };
    let now = now_ms();
    let mut received: Vec<Received> = Vec::new();
    let mut inbound: Vec<Inbound> = Vec::new();
    let mut typing: Vec<TypingNotice> = Vec::new();
    let mut updates = Vec::new();
    let mut unreadable: Vec<String> = Vec::new();
    // Hashes were checked against the data by session-net.
    for m in &fetched.messages {
        match open_with(keys, &mut cursor.senders, m, now) {
            Opened::Unreadable => unreadable.push(m.hash.clone()),
            Opened::Message(r) => received.push(r),
            Opened::Inbound(i) => inbound.push(i),
            Opened::Typing { sender, typing: t } if cursor.first_typing(&m.hash) => {
                typing.push(TypingNotice {
                    identity: id,
                    peer: sender,
                    typing: t,
                    at_ms: now,
                });
            }
            Opened::Typing { .. } => {}
            Opened::GroupUpdate { sender, ts, update } => updates.push((sender, ts, update)),
            Opened::Skip => {}
        }
    }
    if !updates.is_empty() {
        let own = IdentityKeys::from_seed(keys.seed());
        let written = ctx
            .blocking(move |s| {
                let mut written = Vec::new();
                for (sender, ts, update) in updates {
                    written.extend(super::groups::direct_update(
                        s, id, &own, &sender, ts, &update, now,
                    )?);
                }
                Ok(written)
            })
            .await
            .map_err(engine_err)?;
        // Invitations and promotions reach the account's other devices through UserGroups.
        for rec in &written {
            if let Some(edit) = super::configsync::group_edit(rec) {
                ctx.sync.edit(id, edit);
            }
        }
    }
    in_send_order(&mut received);
    inbound.sort_by(|a, b| (a.sent_at_ms, &a.hash).cmp(&(b.sent_at_ms, &b.hash)));
    let got = fetched.messages.len();
    if !unreadable.is_empty() {
        tracing::info!(
            identity = id,
            count = unreadable.len(),
            "messages in the new format arrived; they cannot be read here"
        );
        ctx.blocking(move |s| {
            for hash in &unreadable {
                s.record_unreadable(id, hash, V2_REASON, now)?;
            }
            Ok(())
        })
        .await
        .map_err(engine_err)?;
    }
    // The messages first (a reaction in the same batch finds its message), then the control
    // messages with the cursor: a failure between the two polls the batch again, and the
    // store's hash dedupe records each once.
    let ns = i32::from(NAMESPACE);
    let added = ctx
        .blocking(move |s| {
            let mut added = s.record_received(id, ns, &received, None, now)?;
            added.extend(s.record_inbound(id, &inbound, Some((ns, &last)), now)?);
            Ok(added)
        })
        .await
        .map_err(engine_err)?;
    // Kept: the cursors move (a failure above polls the same messages again).
    cursor.mailbox.advance(&poll);
    if let Some(files) = &ctx.files {
        files.after_received(id, &added);
    }
    ctx.metrics.messages_received(added.len());
    // After the messages they may follow, so a subscriber sees "stopped typing" after the text.
    let notices = typing.len();
    for notice in typing {
        ctx.store.publish_typing(notice);
    }
    tracing::debug!(
        identity = id,
        fetched = got,
        repeats = fetched.repeats,
        new = added.len(),
        typing = notices,
        "polled"
    );
    Ok(Polled {
        got: added.len() + notices,
        more: fetched.more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;
    use session_proto::message::{encrypt_message, text_content, typing_content};
    use session_proto::protos::{Content, ReceiptMessage};
    use session_proto::storage_rpc::Base64Bytes;

    const NOW: u64 = 1_700_000_100_000;

    fn retrieved(
        from: &IdentityKeys,
        to: &IdentityKeys,
        content: &Content,
        ts: u64,
    ) -> RetrievedMessage {
        let data = encrypt_message(from, to.account_id(), content, ts, &mut OsRng).expect("seal");
        RetrievedMessage {
            hash: format!("hash-{ts}"),
            timestamp: ts,
            expiration: ts + 1000,
            data: Base64Bytes(data),
        }
    }

    #[test]
    fn only_visible_messages_are_recorded_and_typing_is_recognised() {
        let alice = IdentityKeys::generate(&mut OsRng);
        let bob = IdentityKeys::generate(&mut OsRng);
        let sender = alice.account_id().to_string();

        let text = retrieved(&alice, &bob, &text_content("hi", Some("Alice"), NOW), NOW);
        match open(&bob, &text, NOW + 5) {
            Opened::Message(r) => {
                assert_eq!(
                    (r.sender.as_str(), r.text.as_str()),
                    (sender.as_str(), "hi")
                );
                assert_eq!(r.sender_profile_name.as_deref(), Some("Alice"));
                assert_eq!((r.sent_at_ms, r.received_at_ms), (NOW, NOW + 5));
                assert_eq!(r.hash, text.hash);
            }
            other => panic!("a text must be recorded, got {other:?}"),
        }

        let typing = retrieved(&alice, &bob, &typing_content(true, NOW), NOW);
        assert_eq!(
            open(&bob, &typing, NOW + 1_000),
            Opened::Typing {
                sender: sender.clone(),
                typing: true
            }
        );
        let stopped = retrieved(&alice, &bob, &typing_content(false, NOW), NOW);
        assert_eq!(
            open(&bob, &stopped, NOW),
            Opened::Typing {
                sender,
                typing: false
            }
        );
        // A typing notice long past its TTL is stale.
        assert_eq!(open(&bob, &typing, NOW + 10 * 60_000), Opened::Skip);

        let receipt = Content {
            receipt_message: Some(ReceiptMessage {
                r#type: 1,
                timestamp: vec![NOW],
            }),
            sig_timestamp: Some(NOW),
            ..Content::default()
        };
        assert!(matches!(
            open(&bob, &retrieved(&alice, &bob, &receipt, NOW), NOW),
            Opened::Inbound(Inbound {
                what: InboundKind::ReadReceipt { .. },
                ..
            })
        ));
        let empty = Content {
            sig_timestamp: Some(NOW),
            ..Content::default()
        };
        assert_eq!(
            open(&bob, &retrieved(&alice, &bob, &empty, NOW), NOW),
            Opened::Skip
        );
        // Not for us.
        assert_eq!(open(&alice, &text, NOW), Opened::Skip);
    }

    #[test]
    fn a_batch_is_put_in_send_order() {
        let alice = IdentityKeys::generate(&mut OsRng);
        let bob = IdentityKeys::generate(&mut OsRng);
        // Stored (and so retrieved) in the reverse order of sending; two share a timestamp.
        let batch: Vec<Received> = [
            (NOW + 2, "second"),
            (NOW + 1, "first-b"),
            (NOW + 1, "first-a"),
        ]
        .into_iter()
        .map(|(ts, text)| {
            let mut m = retrieved(&alice, &bob, &text_content(text, None, ts), ts);
            m.hash = format!("hash-{text}");
            match open(&bob, &m, NOW + 10) {
                Opened::Message(r) => r,
                other => panic!("a text must be recorded, got {other:?}"),
            }
        })
        .collect();
        let mut sorted = batch.clone();
        in_send_order(&mut sorted);
        let texts: Vec<&str> = sorted.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["first-a", "first-b", "second"]);
    }

    #[test]
    fn quiet_identities_are_polled_less() {
        let s = Duration::from_secs;
        let tiers = (s(3), s(30), s(120));
        let after = (s(120), s(1800));
        assert_eq!(interval(s(0), after, tiers), s(3));
        assert_eq!(interval(s(119), after, tiers), s(3));
        assert_eq!(interval(s(120), after, tiers), s(30));
        assert_eq!(interval(s(1799), after, tiers), s(30));
        assert_eq!(interval(s(1800), after, tiers), s(120));
    }

    #[test]
    fn typing_hashes_are_passed_on_once() {
        let mut cursor = Cursor::new(UserPubkey([5; 33]), Auth::None);
        assert!(cursor.first_typing("a"));
        assert!(!cursor.first_typing("a"));
        for n in 0..TYPING_SEEN {
            assert!(cursor.first_typing(&format!("h{n}")));
        }
        assert_eq!(cursor.typing_seen.len(), TYPING_SEEN);
        // "a" fell out of the window, the newest are still remembered.
        assert!(cursor.first_typing("a"));
        assert!(!cursor.first_typing(&format!("h{}", TYPING_SEEN - 1)));
    }

    #[test]
    fn sync_copies_from_the_account_are_recognised_and_others_skipped() {
        use crate::rpc::{sync_copy, SessionSealer};
        let me = IdentityKeys::generate(&mut OsRng);
        let bob = IdentityKeys::generate(&mut OsRng);
        let bob_id = bob.account_id().to_string();
        let content = text_content("from my phone", Some("Me"), NOW);
        let copy = sync_copy(&SessionSealer, &me, bob.account_id(), &content, NOW)
            .expect("seal")
            .expect("a copy");
        let m = RetrievedMessage {
            hash: copy.hash.clone(),
            timestamp: NOW,
            expiration: NOW + 1000,
            data: Base64Bytes(copy.payload),
        };
        match open(&me, &m, NOW + 5) {
            Opened::Message(r) => {
                assert_eq!(r.sync_target.as_deref(), Some(bob_id.as_str()));
                assert_eq!(r.sender, me.account_id().to_string());
                assert_eq!((r.text.as_str(), r.sent_at_ms), ("from my phone", NOW));
            }
            other => panic!("a sync copy must be recorded, got {other:?}"),
        }
        // An ordinary message has no target.
        let plain = retrieved(&bob, &me, &content, NOW);
        assert!(matches!(
            open(&me, &plain, NOW),
            Opened::Message(Received {
                sync_target: None,
                server_id: None,
                edited_at_ms: None,
                ..
            })
        ));

        let with_target = |target: &str| {
            let mut c = content.clone();
            if let Some(d) = c.data_message.as_mut() {
                d.sync_target = Some(target.to_owned());
            }
            c
        };
        // Someone else cannot write our sync copies.
        let forged = retrieved(&bob, &me, &with_target(&bob_id), NOW);
        assert_eq!(open(&me, &forged, NOW), Opened::Skip);
        // Targets that are not someone else's Account ID.
        let me_id = me.account_id().to_string();
        for bad in [
            me_id.as_str(),
            "05zz",
            "not an id",
            &format!("03{}", &bob_id[2..]),
        ] {
            let m = retrieved(&me, &me, &with_target(bad), NOW);
            assert_eq!(open(&me, &m, NOW), Opened::Skip, "target {bad:?}");
        }
        // An empty target is no target.
        let m = retrieved(&me, &me, &with_target(""), NOW);
        assert!(matches!(
            open(&me, &m, NOW),
            Opened::Message(Received {
                sync_target: None,
                server_id: None,
                edited_at_ms: None,
                ..
            })
        ));
    }
}
