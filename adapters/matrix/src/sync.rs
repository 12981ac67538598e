//! `GET /_matrix/client/v3/sync`: initial and incremental sync from the identity's event log.
//!
//! `since` is an event-log cursor (plus the ephemeral version, see [`StreamToken`]): an
//! incremental sync reads the log after it with `History`, so a client that was away for days
//! gets exactly what it missed, once. With nothing new it long-polls up to `timeout` on the
//! identity's live subscription (see [`crate::state::IdentityState`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use serde_json::{json, Value};
use sessiond_api::v1::{event, Conversation, Event, ListEventsRequest};
use tokio::time::Instant;

use crate::auth::Me;
use crate::err::MatrixError;
use crate::events::{m_direct, peer_of, Membership, RoomView};
use crate::http::{Answer, Json, Query};
use crate::ids::StreamToken;
use crate::ignored;
use crate::kinds::Loaded;
use crate::state::{IdentityState, Shared, Typers};

/// Timeline events per room when the filter sets no limit.
pub const DEFAULT_TIMELINE_LIMIT: usize = 20;
/// The largest timeline limit honoured (larger filter values are clamped to it).
pub const MAX_TIMELINE_LIMIT: usize = 100;
/// Event-log entries read per incremental sync; a client further behind catches up over
/// several syncs (each `next_batch` is where the previous one stopped).
const BATCH: i32 = 500;
/// How far back [`was_joined`] looks for the conversation's previous state.
const LOOKBACK: i32 = 200;
/// Unread messages are counted up to this many per room (clients show "99+" long before).
const MAX_UNREAD: i32 = 1000;

/// What a `/sync` asked for.
#[derive(Debug, PartialEq, Eq)]
struct Params {
    since: Option<StreamToken>,
    timeout: Duration,
    limit: usize,
    /// `full_state=true`: every joined room with its whole state, changed or not.
    full_state: bool,
}

fn params(s: &Shared, me: &Me, query: &Query) -> Result<Params, MatrixError> {
    let since = match query.get("since") {
        None | Some("") => None,
        Some(t) => Some(
            StreamToken::parse(t)
                .ok_or_else(|| MatrixError::param("since", "not a token this server gave"))?,
        ),
    };
    let timeout = match query.get("timeout") {
        None | Some("") => 0,
        Some(t) => clamp_number(t, 0, s.config.max_sync_timeout_ms)
            .ok_or_else(|| MatrixError::param("timeout", "not a number"))?,
    };
    let limit = match query.get("filter") {
        None | Some("") => None,
        Some(f) if f.trim_start().starts_with('{') => Some(
            serde_json::from_str::<Value>(f)
                .map_err(|e| MatrixError::param("filter", format!("not JSON: {e}")))?,
        ),
        // Filters live in memory: after a restart a client's old filter id means the default.
        Some(id) => id
            .parse()
            .ok()
            .and_then(|id| s.identity(me.name()).filter(id)),
    }
    .map_or(DEFAULT_TIMELINE_LIMIT, |f| timeline_limit(&f));
    let full_state = match query.get("full_state") {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(MatrixError::param("full_state", "not true or false")),
    };
    Ok(Params {
        since,
        timeout: Duration::from_millis(timeout),
        limit,
        full_state,
    })
}

/// A decimal number (possibly negative, possibly huge, possibly with a fraction) clamped to
/// `min..=max`; `None` if it is not a number.
pub(crate) fn clamp_number(s: &str, min: u64, max: u64) -> Option<u64> {
    let v: f64 = s.trim().parse().ok()?;
    if v.is_nan() {
        return None;
    }
    // `as` saturates: -1e30 → 0, 1e30 → u64::MAX.
    Some((v as u64).clamp(min, max))
}

/// `room.timeline.limit` of a filter, clamped; the default if absent or not a number.
pub(crate) fn timeline_limit(filter: &Value) -> usize {
    match filter["room"]["timeline"]["limit"].as_f64() {
        Some(v) if v.is_finite() => (v as usize).clamp(1, MAX_TIMELINE_LIMIT),
        _ => DEFAULT_TIMELINE_LIMIT,
    }
}

/// The handler.
pub(crate) async fn sync(State(s): State<Arc<Shared>>, me: Me, query: Query) -> Answer {
    sync_of(&s, &me, &query).await.map(Json)
}

async fn sync_of(s: &Shared, me: &Me, query: &Query) -> Result<Value, MatrixError> {
    let p = params(s, me, query)?;
    let ids = s.identity(me.name());
    ids.ensure_live(
        &me.client,
        me.name(),
        me.identity.last_seq,
        me.identity.log_epoch,
        s.stop.clone(),
    );
    let Some(since) = p.since else {
        return initial(s, me, &ids, p.limit).await;
    };
    if since.seq > me.identity.last_seq {
        return Err(MatrixError::param(
            "since",
            "past the end of the event log (a token from another data dir?)",
        ));
    }
    let deadline = Instant::now() + p.timeout;
    let mut rx = ids.watch();
    let mut stop = s.stop.clone();
    loop {
        let (resp, empty) = incremental(s, me, &ids, since, p.limit, p.full_state).await?;
        if !empty || Instant::now() >= deadline || *stop.borrow() {
            return Ok(resp);
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(resp);
                }
                // The live subscription may have ended (its token was revoked): go on with ours.
                ids.ensure_live(
                    &me.client,
                    me.name(),
                    ids.last_seq(),
                    me.identity.log_epoch,
                    s.stop.clone(),
                );
            }
            () = tokio::time::sleep_until(deadline) => {}
            () = crate::state::stopped(&mut stop) => return Ok(resp),
        }
    }
}

/// The identity's conversations shown as rooms.
pub(crate) async fn conversations(me: &Me) -> Result<Vec<Loaded>, MatrixError> {
    crate::kinds::load_all(me).await
}

/// The newest `limit` timeline events of a room up to seq `end`, oldest first, with `limited`,
/// the `prev_batch` token before them and the member events of the posters among them (in
/// community rooms).
pub(crate) async fn recent(
    me: &Me,
    ids: &IdentityState,
    view: &RoomView<'_>,
    end: u64,
    limit: usize,
) -> Result<(Vec<Value>, bool, StreamToken, Vec<Value>), MatrixError> {
    let page = me
        .client
        .messages
        .clone()
        .list_events(ListEventsRequest {
            identity: me.name().to_owned(),
            after_seq: 0,
            before_seq: end.saturating_add(1),
            page_size: i32::try_from(limit.saturating_mul(3).min(1000)).unwrap_or(1000),
            newest_first: true,
            peer: view.peer().to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut timeline = Vec::new();
    let mut oldest = None;
    let mut limited = !page.next_page_token.is_empty();
    let mut shown = Vec::new();
    for ev in &page.events {
        if timeline.len() >= limit {
            limited = true;
            break;
        }
        let vs = view.timeline_events(ev, ids);
        if !vs.is_empty() {
            timeline.extend(vs.into_iter().rev());
            oldest = Some(ev.seq);
            shown.push(ev);
        }
    }
    timeline.reverse();
    let members = view.poster_members(&shown);
    let prev = StreamToken {
        seq: oldest.map_or(end, |s| s - 1),
        eph: 0,
    };
    Ok((timeline, limited, prev, members))
}

/// The messages the user has not read in a room: those it received after its read marker
/// (the conversation's `read_seq`), up to the end of the room's log, whatever this sync's batch
/// holds. Counted up to [`MAX_UNREAD`].
async fn unread(me: &Me, conv: &Conversation) -> Result<u64, MatrixError> {
    if conv.last_seq <= conv.read_seq {
        return Ok(0);
    }
    let page = me
        .client
        .messages
        .clone()
        .list_events(ListEventsRequest {
            identity: me.name().to_owned(),
            after_seq: conv.read_seq,
            before_seq: 0,
            page_size: MAX_UNREAD,
            newest_first: false,
            peer: conv.account_id.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(page
        .events
        .iter()
        .filter(|e| matches!(e.kind, Some(event::Kind::Incoming(_))))
        .count() as u64)
}

/// A joined room's entry in `rooms.join`.
#[allow(clippy::too_many_arguments)]
fn joined_room(
    view: &RoomView<'_>,
    posters: Vec<Value>,
    timeline: Vec<Value>,
    limited: bool,
    prev: StreamToken,
    ephemeral: Vec<Value>,
    account_data: Vec<Value>,
    unread: u64,
) -> Value {
    let mut state = view.state();
    state.extend(posters);
    json!({
        "summary": view.summary(),
        "state": { "events": state },
        "timeline": { "events": timeline, "limited": limited, "prev_batch": prev.format() },
        "ephemeral": { "events": ephemeral },
        "account_data": { "events": account_data },
        "unread_notifications": { "notification_count": unread, "highlight_count": 0 },
    })
}

fn response(
    next: StreamToken,
    join: serde_json::Map<String, Value>,
    invite: serde_json::Map<String, Value>,
    leave: serde_json::Map<String, Value>,
    account_data: Vec<Value>,
) -> Value {
    json!({
        "next_batch": next.format(),
        "rooms": { "join": join, "invite": invite, "leave": leave, "knock": {} },
        "account_data": { "events": account_data },
        "presence": { "events": [] },
        "to_device": { "events": [] },
        "device_lists": { "changed": [], "left": [] },
        "device_one_time_keys_count": {},
    })
}

/// The first sync: every open conversation with its recent timeline, every message request as
/// an invite, up to the log's end as of the request.
async fn initial(
    s: &Shared,
    me: &Me,
    ids: &IdentityState,
    limit: usize,
) -> Result<Value, MatrixError> {
    let end = me.identity.last_seq;
    let eph = ids.ephemeral_since(0);
    let typing: HashMap<&str, Typers> = eph.typing.iter().map(|(p, t)| (p.as_str(), *t)).collect();
    let convs = conversations(me).await?;
    let server = s.config.server_name.as_str();
    let (mut join, mut invite) = (serde_json::Map::new(), serde_json::Map::new());
    for loaded in &convs {
        let conv = &loaded.conv;
        let view = loaded.view(me, server);
        match view.membership() {
            Membership::Join => {
                let (timeline, limited, prev, posters) = recent(me, ids, &view, end, limit).await?;
                let mut ephemeral: Vec<Value> = view.receipt().into_iter().collect();
                if let Some(who) = typing.get(view.peer()) {
                    ephemeral.push(view.typing(*who));
                }
                let account_data = view.fully_read().into_iter().collect();
                let unread = unread(me, conv).await?;
                join.insert(
                    view.room_id(),
                    joined_room(
                        &view,
                        posters,
                        timeline,
                        limited,
                        prev,
                        ephemeral,
                        account_data,
                        unread,
                    ),
                );
            }
            Membership::Invite => {
                invite.insert(
                    view.room_id(),
                    json!({ "invite_state": { "events": view.invite_state() } }),
                );
            }
            Membership::Leave => {}
        }
    }
    let mut account_data = vec![
        m_direct(me, server, convs.iter().map(|l| &l.conv)),
        json!({ "type": ignored::KIND, "content": ignored::content(me, server).await? }),
    ];
    account_data.extend(
        eph.account_data
            .into_iter()
            .filter(|(k, _)| k != "m.direct" && k != ignored::KIND)
            .map(|(k, c)| json!({ "type": k, "content": c })),
    );
    let next = StreamToken {
        seq: end,
        eph: eph.eph,
    };
    Ok(response(
        next,
        join,
        invite,
        serde_json::Map::new(),
        account_data,
    ))
}

/// What happened after `since`; the bool says the answer is empty (nothing to wait for).
async fn incremental(
    s: &Shared,
    me: &Me,
    ids: &IdentityState,
    since: StreamToken,
    limit: usize,
    full_state: bool,
) -> Result<(Value, bool), MatrixError> {
    let page = me
        .client
        .messages
        .clone()
        .list_events(ListEventsRequest {
            identity: me.name().to_owned(),
            after_seq: since.seq,
            before_seq: 0,
            page_size: BATCH,
            newest_first: false,
            peer: String::new(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let eph = ids.ephemeral_since(since.eph);
    let next = StreamToken {
        seq: page.events.last().map_or(since.seq, |e| e.seq),
        eph: eph.eph,
    };
    let empty = serde_json::Map::new;
    let nothing_new = page.events.is_empty()
        && eph.typing.is_empty()
        && eph.account_data.is_empty()
        && eph.rooms.is_empty();
    if nothing_new && !full_state {
        return Ok((response(next, empty(), empty(), empty(), vec![]), true));
    }

    // The batch's events by conversation, in log order; which conversations changed.
    let mut by_peer: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    let mut changed: BTreeMap<&str, u64> = BTreeMap::new();
    for ev in &page.events {
        if let Some(peer) = peer_of(ev) {
            by_peer.entry(peer).or_default().push(ev);
            if matches!(
                ev.kind,
                Some(event::Kind::Conversation(_) | event::Kind::Group(_))
            ) {
                changed.insert(peer, ev.seq);
            }
        }
    }
    let typing: HashMap<&str, Typers> = eph.typing.iter().map(|(p, t)| (p.as_str(), *t)).collect();
    // Community rooms joined or left through this adapter (the daemon logs no event for it).
    let rejoined: BTreeSet<&str> = eph.rooms.iter().map(String::as_str).collect();
    let touched: BTreeSet<&str> = by_peer
        .keys()
        .chain(typing.keys())
        .chain(rejoined.iter())
        .copied()
        .collect();

    let convs = crate::kinds::load_all_with(me, &|a| touched.contains(a)).await?;
    let server = s.config.server_name.as_str();
    let (mut join, mut invite, mut leave) = (empty(), empty(), empty());
    for loaded in convs.iter().filter(|l| {
        // full_state: every joined room (with its whole state, as always here), changed or not.
        touched.contains(l.address()) || (full_state && l.membership() == Membership::Join)
    }) {
        let peer = loaded.address();
        let events = by_peer.get(peer).map(Vec::as_slice).unwrap_or(&[]);
        let cc_seq = changed.get(peer).copied();
        // The membership as of the batch's end: the conversations were read after the batch, so
        // a change logged in between (a kick, a leave) belongs to the next batch, with its event.
        let membership = match batch_membership(events, loaded.membership()) {
            Some(m) => m,
            None if !rejoined.contains(peer) && was_joined(me, peer, next.seq).await? => {
                Membership::Join
            }
            None => loaded.membership(),
        };
        let as_of_batch;
        let loaded = if membership == loaded.membership() {
            loaded
        } else {
            as_of_batch = loaded.with_membership(membership);
            &as_of_batch
        };
        let conv = &loaded.conv;
        let view = loaded.view(me, server);
        match membership {
            Membership::Join => {
                let newly = rejoined.contains(peer)
                    || (cc_seq.is_some() && !was_joined(me, peer, since.seq).await?);
                let (timeline, limited, prev, posters) = if newly {
                    // Joined in this batch: the room's recent history, as in an initial sync.
                    recent(me, ids, &view, next.seq, limit).await?
                } else {
                    let mut timeline: Vec<(u64, Value)> = events
                        .iter()
                        .flat_map(|ev| {
                            view.timeline_events(ev, ids)
                                .into_iter()
                                .map(|v| (ev.seq, v))
                        })
                        .collect();
                    let limited = timeline.len() > limit;
                    if limited {
                        timeline.drain(..timeline.len() - limit);
                    }
                    let prev = StreamToken {
                        seq: timeline.first().map_or(since.seq, |(seq, _)| seq - 1),
                        eph: 0,
                    };
                    (
                        timeline.into_iter().map(|(_, v)| v).collect(),
                        limited,
                        prev,
                        view.poster_members(events),
                    )
                };
                let mut ephemeral = Vec::new();
                let mut account_data = Vec::new();
                if cc_seq.is_some() {
                    ephemeral.extend(view.receipt());
                    account_data.extend(view.fully_read());
                }
                if let Some(who) = typing.get(peer) {
                    ephemeral.push(view.typing(*who));
                }
                ephemeral.extend(crate::interact::peer_receipt(&view, events));
                let unread = unread(me, conv).await?;
                join.insert(
                    view.room_id(),
                    joined_room(
                        &view,
                        posters,
                        timeline,
                        limited,
                        prev,
                        ephemeral,
                        account_data,
                        unread,
                    ),
                );
            }
            Membership::Invite => {
                if !events.is_empty() {
                    invite.insert(
                        view.room_id(),
                        json!({ "invite_state": { "events": view.invite_state() } }),
                    );
                }
            }
            Membership::Leave => {
                let left_here = rejoined.contains(peer) && cc_seq.is_none();
                if matches!(loaded.extra, crate::kinds::Extra::Group { .. }) && cc_seq.is_some() {
                    // The group's changes up to the leave (a kick says who by).
                    let timeline: Vec<Value> = events
                        .iter()
                        .flat_map(|ev| view.timeline_events(ev, ids))
                        .collect();
                    let first = events.first().map_or(since.seq, |e| e.seq - 1);
                    leave.insert(
                        view.room_id(),
                        json!({
                            "state": { "events": view.state() },
                            "timeline": {
                                "events": timeline,
                                "limited": false,
                                "prev_batch": StreamToken { seq: first, eph: 0 }.format(),
                            },
                            "account_data": { "events": [] },
                        }),
                    );
                } else if left_here {
                    let mut ev = view.leave_event(0, now_ms());
                    ev["event_id"] =
                        json!(format!("$left_{}_{}", crate::ids::room_key(peer), eph.eph));
                    leave.insert(
                        view.room_id(),
                        json!({
                            "state": { "events": view.state() },
                            "timeline": {
                                "events": [ev],
                                "limited": false,
                                "prev_batch": since.format(),
                            },
                            "account_data": { "events": [] },
                        }),
                    );
                } else if let Some(seq) = cc_seq {
                    let ts = events
                        .iter()
                        .find(|e| e.seq == seq)
                        .map_or(0, |e| e.recorded_at_ms);
                    leave.insert(
                        view.room_id(),
                        json!({
                            "state": { "events": view.state() },
                            "timeline": {
                                "events": [view.leave_event(seq, ts)],
                                "limited": false,
                                "prev_batch": StreamToken { seq: seq - 1, eph: 0 }.format(),
                            },
                            "account_data": { "events": [] },
                        }),
                    );
                }
            }
        }
    }
    let mut account_data = Vec::new();
    if !page.events.is_empty() {
        account_data.push(m_direct(me, server, convs.iter().map(|l| &l.conv)));
    }
    // A block or unblock (here or on another device of the account) changes a conversation.
    if !changed.is_empty() {
        account_data
            .push(json!({ "type": ignored::KIND, "content": ignored::content(me, server).await? }));
    }
    account_data.extend(
        eph.account_data
            .into_iter()
            .filter(|(k, _)| k != "m.direct" && k != ignored::KIND)
            .map(|(k, c)| json!({ "type": k, "content": c })),
    );
    Ok((response(next, join, invite, leave, account_data), false))
}

/// The user's membership of a room as of the end of a batch holding the room's `events`, when
/// it is `now`: the newest change in the batch, else `now` if nothing in the batch can be out of
/// step with it; `None` when a room the user is out of now had events in the batch (a leave or
/// kick may have come after it: the log answers).
fn batch_membership(events: &[&Event], now: Membership) -> Option<Membership> {
    match events
        .iter()
        .rev()
        .find_map(|ev| Membership::changed_by(ev))
    {
        Some(m) => Some(m),
        None if now != Membership::Join && !events.is_empty() => None,
        None => Some(now),
    }
}

/// Whether the user was in the room with `peer` as of seq `at`: the state the newest
/// conversation change up to `at` recorded; with none in reach, whether the user wrote in it
/// (writing accepts a conversation).
async fn was_joined(me: &Me, peer: &str, at: u64) -> Result<bool, MatrixError> {
    if at == 0 {
        return Ok(false);
    }
    let page = me
        .client
        .messages
        .clone()
        .list_events(ListEventsRequest {
            identity: me.name().to_owned(),
            after_seq: 0,
            before_seq: at + 1,
            page_size: LOOKBACK,
            newest_first: true,
            peer: peer.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut wrote = false;
    for ev in &page.events {
        if let Some(m) = Membership::changed_by(ev) {
            return Ok(m == Membership::Join);
        }
        wrote |= matches!(ev.kind, Some(event::Kind::Outgoing(_)));
    }
    Ok(wrote)
}

/// Now, in ms since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_membership_is_as_of_the_batch_not_as_read_after_it() {
        use sessiond_api::v1::{
            Conversation, ConversationChanged, ConversationKind, GroupChanged, GroupStatus,
            IncomingMessage,
        };
        let group = |status: GroupStatus| Event {
            seq: 1,
            kind: Some(event::Kind::Group(GroupChanged {
                status: status as i32,
                ..Default::default()
            })),
            ..Default::default()
        };
        let text = Event {
            seq: 2,
            kind: Some(event::Kind::Incoming(IncomingMessage::default())),
            ..Default::default()
        };
        let conv = |kind: ConversationKind, accepted: bool, left: bool| Event {
            seq: 3,
            kind: Some(event::Kind::Conversation(ConversationChanged {
                conversation: Some(Conversation {
                    kind: kind as i32,
                    accepted,
                    left,
                    ..Default::default()
                }),
            })),
            ..Default::default()
        };
        let (joined, kicked) = (group(GroupStatus::Joined), group(GroupStatus::Kicked));
        // The kick is in the batch: the room leaves with it.
        assert_eq!(
            batch_membership(&[&text, &kicked], Membership::Leave),
            Some(Membership::Leave)
        );
        // Joined in the batch, kicked after it was read: still joined as of this batch.
        assert_eq!(
            batch_membership(&[&joined, &text], Membership::Leave),
            Some(Membership::Join)
        );
        // Messages only, out of the room now: the log says whether the leave came after.
        assert_eq!(batch_membership(&[&text], Membership::Leave), None);
        assert_eq!(batch_membership(&[&text], Membership::Invite), None);
        assert_eq!(
            batch_membership(&[&text], Membership::Join),
            Some(Membership::Join)
        );
        assert_eq!(
            batch_membership(&[], Membership::Leave),
            Some(Membership::Leave)
        );
        // A one-to-one conversation's flags are its membership; a group's are not.
        let dm_left = conv(ConversationKind::Direct, true, true);
        assert_eq!(
            batch_membership(&[&dm_left], Membership::Join),
            Some(Membership::Leave)
        );
        let group_conv = conv(ConversationKind::Group, false, false);
        assert_eq!(
            batch_membership(&[&joined, &group_conv], Membership::Leave),
            Some(Membership::Join)
        );
    }

    #[test]
    fn numbers_clamp() {
        assert_eq!(clamp_number("0", 0, 100), Some(0));
        assert_eq!(clamp_number("-5", 0, 100), Some(0));
        assert_eq!(
            clamp_number("99999999999999999999999999", 0, 100),
            Some(100)
        );
        assert_eq!(clamp_number("1e300", 0, 100), Some(100));
        assert_eq!(clamp_number("50.7", 0, 100), Some(50));
        assert_eq!(clamp_number("abc", 0, 100), None);
        assert_eq!(clamp_number("NaN", 0, 100), None);
        assert_eq!(clamp_number("", 0, 100), None);
    }

    #[test]
    fn filter_limits_clamp() {
        let f = |v: Value| timeline_limit(&json!({ "room": { "timeline": { "limit": v } } }));
        assert_eq!(f(json!(5)), 5);
        assert_eq!(f(json!(0)), 1);
        assert_eq!(f(json!(-3)), 1);
        assert_eq!(f(json!(1e20)), MAX_TIMELINE_LIMIT);
        assert_eq!(f(json!("ten")), DEFAULT_TIMELINE_LIMIT);
        assert_eq!(timeline_limit(&json!({})), DEFAULT_TIMELINE_LIMIT);
    }
}
