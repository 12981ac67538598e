//! `sessiond export` and `sessiond import`: an identity's history in a file and back.
//!
//! # The JSON-lines archive (`--format jsonl`)
//! One JSON object per line, each with a `"t"` naming its kind:
//! 1. `header`: `format` ("sessiond-archive"), `version` (2), `exported_at_ms`, `since_ms`,
//!    `identity` (the identity record), `seed` (64 hex characters: the archive is as secret as
//!    a recovery password).
//! 2. The rows ([`Row`]): `event` (`seq`, `event`: the event as stored), `index` (`peer`,
//!    `seq`), `seen` (`hash`, `seq`), `cursor` (`namespace`, `last_hash`), `conversation` and
//!    `contact` (`key`, `record`), `handle` (`handle`, `account_id`), `config_dump`
//!    (`namespace`, `dump` in base64); since version 2 also `record` (`table`: `groups`,
//!    `community_rooms`, `community_servers`, `attachments`, `disappearing` or `swarm_chores`;
//!    `key`, `record`), `peer` (`blinded`, `base_url`: a blinded ID met on a community
//!    server), `settings` (`record`: the identity's settings) and `expiry` (`at_ms`, `seq`,
//!    `record`: a disappearing message's purge). Attachment files are not in the archive: an
//!    attachment that had a local copy is exported as `pending` (not downloaded; the imported
//!    daemon fetches it again on request while the file server still has it).
//! 3. `end`: `lines` (the count of lines before it) and `sha256` (hex, over the bytes of every
//!    line before it, newlines included).
//!
//! Import checks all of it before writing anything: the header, the trailer (a truncated file
//! has none; an edited one fails the hash), every line's shape, the seed against the Account
//! ID, the seqs. It then writes into a new directory beside the target and renames it into
//! place, so a failure leaves no half-written data dir.
//!
//! # The mbox export (`--format mbox`)
//! The messages (incoming and outgoing) as an mbox (RFC 4155, `>From ` quoting) for mail
//! readers: one mail per message, From/To as `<account id>@session.invalid`, the Session time as
//! Date. Export only: mbox loses the other events, so it cannot be imported.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use session_proto::err::{ErrorKind, HasKind};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::store::{
    EventKind, IdentityRecord, IdentityRows, RecordTable, Row, Store, StoreError, StoredEvent,
};

/// The `format` of the header.
pub const FORMAT: &str = "sessiond-archive";
/// The version this build writes; it reads this one and every older one.
pub const VERSION: u32 = 2;
/// The oldest version this build reads (version 1 has no `record`, `peer`, `settings` or
/// `expiry` lines).
pub const OLDEST_VERSION: u32 = 1;

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed.
    #[error("cannot write the export: {0}")]
    Write(#[source] std::io::Error),
    /// The archive file could not be read.
    #[error("cannot read the archive {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The archive is damaged, truncated, edited or not an archive.
    #[error("the archive is not usable: {0}; nothing was imported")]
    Bad(String),
    /// The target data dir exists with something in it.
    #[error(
        "the data dir {} exists and is not empty; import only into a new (or empty) data dir",
        dir.display()
    )]
    TargetExists {
        /// The data dir.
        dir: PathBuf,
    },
    /// Creating or moving the imported data dir failed.
    #[error("cannot create the data dir {}: {source}", dir.display())]
    Target {
        /// The data dir.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl HasKind for ArchiveError {
    fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Store(e) => e.kind(),
            ArchiveError::Write(_) | ArchiveError::Read { .. } | ArchiveError::Target { .. } => {
                ErrorKind::LocalIo
            }
            ArchiveError::Bad(_) => ErrorKind::InvalidInput,
            ArchiveError::TargetExists { .. } => ErrorKind::AlreadyExists,
        }
    }
}

fn bad(detail: impl Into<String>) -> ArchiveError {
    ArchiveError::Bad(detail.into())
}

/// The header line.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    exported_at_ms: u64,
    since_ms: u64,
    identity: Box<RawValue>,
    seed: String,
}

/// An event line.
#[derive(Debug, Serialize, Deserialize)]
struct EventLine {
    seq: u64,
    event: Box<RawValue>,
}

/// A conversation or contact line.
#[derive(Debug, Serialize, Deserialize)]
struct RecordLine {
    key: String,
    record: Box<RawValue>,
}

/// One line of the archive. (The lines holding raw records are read by [`parse_line`]:
/// serde cannot read a raw value inside an internally tagged enum.)
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Line {
    Header(Header),
    Event(EventLine),
    Index { peer: String, seq: u64 },
    Seen { hash: String, seq: u64 },
    Cursor { namespace: i32, last_hash: String },
    Conversation(RecordLine),
    Contact(RecordLine),
    Handle { handle: String, account_id: String },
    ConfigDump { namespace: i32, dump: String },
    End { lines: u64, sha256: String },
    Record(TableLine),
    Peer { blinded: String, base_url: String },
    CommunityAccount { blinded: String, account_id: String },
    Settings { record: Box<RawValue> },
    Expiry(ExpiryLine),
}

/// A `record` line: a row of one of the record tables.
#[derive(Debug, Serialize, Deserialize)]
struct TableLine {
    table: String,
    key: String,
    record: Box<RawValue>,
}

/// An `expiry` line.
#[derive(Debug, Serialize, Deserialize)]
struct ExpiryLine {
    at_ms: u64,
    seq: u64,
    record: Box<RawValue>,
}

fn parse_line(bytes: &[u8]) -> Result<Line, serde_json::Error> {
    #[derive(Deserialize)]
    struct Tag {
        t: String,
    }
    let tag: Tag = serde_json::from_slice(bytes)?;
    Ok(match tag.t.as_str() {
        "header" => Line::Header(serde_json::from_slice(bytes)?),
        "event" => Line::Event(serde_json::from_slice(bytes)?),
        "conversation" => Line::Conversation(serde_json::from_slice(bytes)?),
        "contact" => Line::Contact(serde_json::from_slice(bytes)?),
        "record" => Line::Record(serde_json::from_slice(bytes)?),
        "expiry" => Line::Expiry(serde_json::from_slice(bytes)?),
        "settings" => {
            #[derive(Deserialize)]
            struct Settings {
                record: Box<RawValue>,
            }
            let s: Settings = serde_json::from_slice(bytes)?;
            Line::Settings { record: s.record }
        }
        _ => serde_json::from_slice(bytes)?,
    })
}

fn raw(bytes: &[u8]) -> Result<Box<RawValue>, ArchiveError> {
    let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("a stored record: {e}")))?;
    RawValue::from_string(text.to_owned()).map_err(|e| bad(format!("a stored record: {e}")))
}

/// The recorded time of a stored event's JSON (0 if it has none).
fn recorded_at(json: &[u8]) -> u64 {
    #[derive(Deserialize)]
    struct At {
        #[serde(default)]
        recorded_at_ms: u64,
    }
    serde_json::from_slice::<At>(json).map_or(0, |a| a.recorded_at_ms)
}

/// Writes lines and keeps the running hash and count for the trailer.
struct Hashed<'w> {
    out: &'w mut dyn Write,
    hash: Sha256,
    lines: u64,
}

impl Hashed<'_> {
    fn line(&mut self, line: &Line) -> Result<(), ArchiveError> {
        let mut bytes = serde_json::to_vec(line).expect("archive lines always serialise");
        bytes.push(b'\n');
        self.hash.update(&bytes);
        self.lines += 1;
        self.out.write_all(&bytes).map_err(ArchiveError::Write)
    }
}

/// Writes `name`'s archive (events recorded at or after `since_ms`) as JSON lines to `out`.
/// Returns how many events it holds.
pub fn export_jsonl(
    store: &Store,
    name: &str,
    since_ms: u64,
    now_ms: u64,
    out: &mut dyn Write,
) -> Result<u64, ArchiveError> {
    let data = store.identity_rows(name, |json| recorded_at(json) >= since_ms)?;
    let mut w = Hashed {
        out,
        hash: Sha256::new(),
        lines: 0,
    };
    w.line(&Line::Header(Header {
        format: FORMAT.to_owned(),
        version: VERSION,
        exported_at_ms: now_ms,
        since_ms,
        identity: raw(&data.identity_json)?,
        seed: hex::encode(*data.seed),
    }))?;
    let mut events = 0;
    for row in &data.rows {
        let line = match row {
            Row::Event { seq, json } => {
                events += 1;
                Line::Event(EventLine {
                    seq: *seq,
                    event: raw(json)?,
                })
            }
            Row::Index { peer, seq } => Line::Index {
                peer: peer.clone(),
                seq: *seq,
            },
            Row::Seen { hash, seq } => Line::Seen {
                hash: hash.clone(),
                seq: *seq,
            },
            Row::Cursor {
                namespace,
                last_hash,
            } => Line::Cursor {
                namespace: *namespace,
                last_hash: last_hash.clone(),
            },
            Row::Conversation { key, json } => Line::Conversation(RecordLine {
                key: key.clone(),
                record: raw(json)?,
            }),
            Row::Contact { key, json } => Line::Contact(RecordLine {
                key: key.clone(),
                record: raw(json)?,
            }),
            Row::Handle { handle, account_id } => Line::Handle {
                handle: handle.clone(),
                account_id: account_id.clone(),
            },
            Row::ConfigDump { namespace, dump } => Line::ConfigDump {
                namespace: *namespace,
                dump: STANDARD.encode(dump),
            },
            Row::Record { table, key, json } => Line::Record(TableLine {
                table: table.name().to_owned(),
                key: key.clone(),
                record: raw(json)?,
            }),
            Row::Peer { blinded, base_url } => Line::Peer {
                blinded: blinded.clone(),
                base_url: base_url.clone(),
            },
            Row::Account {
                blinded,
                account_id,
            } => Line::CommunityAccount {
                blinded: blinded.clone(),
                account_id: account_id.clone(),
            },
            Row::Settings { json } => Line::Settings { record: raw(json)? },
            Row::Expiry { at_ms, seq, json } => Line::Expiry(ExpiryLine {
                at_ms: *at_ms,
                seq: *seq,
                record: raw(json)?,
            }),
        };
        w.line(&line)?;
    }
    let lines = w.lines;
    let sha256 = hex::encode(w.hash.clone().finalize());
    let mut end = serde_json::to_vec(&Line::End { lines, sha256 }).expect("serialises");
    end.push(b'\n');
    w.out.write_all(&end).map_err(ArchiveError::Write)?;
    w.out.flush().map_err(ArchiveError::Write)?;
    Ok(events)
}

/// Writes `name`'s messages recorded at or after `since_ms` as an mbox. Returns how many.
pub fn export_mbox(
    store: &Store,
    name: &str,
    since_ms: u64,
    out: &mut dyn Write,
) -> Result<u64, ArchiveError> {
    let data = store.identity_rows(name, |json| recorded_at(json) >= since_ms)?;
    let me = format!("{}@session.invalid", data.identity.account_id);
    let mut n = 0;
    for row in &data.rows {
        let Row::Event { json, .. } = row else {
            continue;
        };
        let event: StoredEvent = serde_json::from_slice(json)
            .map_err(|e| bad(format!("a stored event does not decode: {e}")))?;
        let (from, to, text, at, id) = match &event.kind {
            EventKind::Incoming(m) => (
                format!("{}@session.invalid", m.sender),
                me.clone(),
                &m.text,
                m.sent_at_ms,
                m.hash.clone(),
            ),
            EventKind::Outgoing {
                message_id,
                recipient,
                text,
                sent_at_ms,
                ..
            } => (
                me.clone(),
                format!("{recipient}@session.invalid"),
                text,
                *sent_at_ms,
                message_id.clone(),
            ),
            _ => continue,
        };
        let mut mail = String::new();
        mail.push_str(&format!("From {from} {}\n", asctime(at)));
        mail.push_str(&format!("From: <{from}>\nTo: <{to}>\n"));
        mail.push_str(&format!("Date: {}\n", mail_date(at)));
        mail.push_str(&format!(
            "Message-ID: <{}.{}@session.invalid>\n",
            id.replace(['<', '>', '@', ' '], ""),
            event.seq
        ));
        mail.push_str("Subject: Session message\nMIME-Version: 1.0\n");
        mail.push_str(
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n",
        );
        for line in text.lines() {
            // mboxrd quoting: ">From ", ">>From ", … gain one more '>'.
            if line.trim_start_matches('>').starts_with("From ") {
                mail.push('>');
            }
            mail.push_str(line);
            mail.push('\n');
        }
        mail.push('\n');
        out.write_all(mail.as_bytes())
            .map_err(ArchiveError::Write)?;
        n += 1;
    }
    out.flush().map_err(ArchiveError::Write)?;
    Ok(n)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 7231's date, which mail readers take as a Date).
fn mail_date(ms: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

/// `Sun Nov  6 08:49:37 1994`: the date of an mbox `From ` line, from [`mail_date`]'s parts.
fn asctime(ms: u64) -> String {
    let date = mail_date(ms);
    let p: Vec<&str> = date.split(' ').collect();
    match p.as_slice() {
        [wd, day, mon, year, time, _] => format!(
            "{} {mon} {:>2} {time} {year}",
            wd.trim_end_matches(','),
            day.trim_start_matches('0')
        ),
        _ => date,
    }
}

/// Reads and checks a JSON-lines archive completely; nothing is written.
pub fn read_archive(bytes: &[u8]) -> Result<IdentityRows, ArchiveError> {
    if bytes.is_empty() {
        return Err(bad("the file is empty"));
    }
    if !bytes.ends_with(b"\n") {
        return Err(bad("the file is truncated (its last line is incomplete)"));
    }
    let body = &bytes[..bytes.len() - 1];
    let (before, last) = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => (&bytes[..=i], &body[i + 1..]),
        None => (&bytes[..0], body),
    };
    let end = parse_line(last)
        .map_err(|_| bad("the file is truncated (it does not end with the \"end\" line)"))?;
    let Line::End { lines, sha256 } = end else {
        return Err(bad(
            "the file is truncated (it does not end with the \"end\" line)",
        ));
    };
    if hex::encode(Sha256::digest(before)) != sha256 {
        return Err(bad(
            "its content does not match the checksum in its \"end\" line (the file was edited or damaged)",
        ));
    }
    let mut it = before.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let count = before.iter().filter(|&&b| b == b'\n').count() as u64;
    if count != lines {
        return Err(bad(format!(
            "it has {count} lines where its \"end\" line says {lines}"
        )));
    }
    let header = it.next().ok_or_else(|| bad("it has no header"))?;
    let header = parse_line(header).map_err(|e| bad(format!("line 1 is not a header: {e}")))?;
    let Line::Header(Header {
        format,
        version,
        identity,
        seed,
        ..
    }) = header
    else {
        return Err(bad("line 1 is not a header"));
    };
    if format != FORMAT {
        return Err(bad(format!("format {format:?} is not {FORMAT:?}")));
    }
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(bad(format!(
            "version {version} is not one this sessiond reads ({OLDEST_VERSION} to {VERSION})"
        )));
    }
    let identity_json = identity.get().as_bytes().to_vec();
    let record: IdentityRecord = serde_json::from_slice(&identity_json)
        .map_err(|e| bad(format!("its identity record: {e}")))?;
    let mut seed_bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(seed.trim(), seed_bytes.as_mut_slice())
        .map_err(|_| bad("its seed is not 64 hex characters"))?;
    let keys = session_proto::keys::IdentityKeys::from_seed(&seed_bytes);
    if keys.account_id().to_string() != record.account_id {
        return Err(bad("its seed does not belong to its Account ID"));
    }
    let mut rows = Vec::new();
    let mut seqs = std::collections::HashSet::new();
    let mut last_seq = 0;
    for (i, line) in it.enumerate() {
        let n = i + 2;
        let parsed = parse_line(line).map_err(|e| bad(format!("line {n}: {e}")))?;
        let row = match parsed {
            Line::Event(EventLine { seq, event }) => {
                if seq <= last_seq {
                    return Err(bad(format!("line {n}: event {seq} is out of order")));
                }
                let json = event.get().as_bytes().to_vec();
                let decoded: StoredEvent = serde_json::from_slice(&json)
                    .map_err(|e| bad(format!("line {n}: event {seq}: {e}")))?;
                if decoded.seq != seq {
                    return Err(bad(format!(
                        "line {n}: event {seq} says seq {}",
                        decoded.seq
                    )));
                }
                last_seq = seq;
                seqs.insert(seq);
                Row::Event { seq, json }
            }
            Line::Index { peer, seq } => {
                if !seqs.contains(&seq) {
                    return Err(bad(format!(
                        "line {n}: the index names a missing event {seq}"
                    )));
                }
                Row::Index { peer, seq }
            }
            Line::Seen { hash, seq } => Row::Seen { hash, seq },
            Line::Cursor {
                namespace,
                last_hash,
            } => Row::Cursor {
                namespace,
                last_hash,
            },
            Line::Conversation(RecordLine { key, record }) => Row::Conversation {
                key,
                json: record.get().as_bytes().to_vec(),
            },
            Line::Contact(RecordLine { key, record }) => Row::Contact {
                key,
                json: record.get().as_bytes().to_vec(),
            },
            Line::Handle { handle, account_id } => Row::Handle { handle, account_id },
            Line::ConfigDump { namespace, dump } => Row::ConfigDump {
                namespace,
                dump: STANDARD
                    .decode(dump)
                    .map_err(|_| bad(format!("line {n}: the config dump is not base64")))?,
            },
            Line::Record(TableLine { table, key, record }) => Row::Record {
                table: RecordTable::from_name(&table)
                    .ok_or_else(|| bad(format!("line {n}: no table {table:?}")))?,
                key,
                json: record.get().as_bytes().to_vec(),
            },
            Line::Peer { blinded, base_url } => Row::Peer { blinded, base_url },
            Line::CommunityAccount {
                blinded,
                account_id,
            } => Row::Account {
                blinded,
                account_id,
            },
            Line::Settings { record } => Row::Settings {
                json: record.get().as_bytes().to_vec(),
            },
            Line::Expiry(ExpiryLine { at_ms, seq, record }) => {
                if !seqs.contains(&seq) {
                    return Err(bad(format!(
                        "line {n}: the expiry names a missing event {seq}"
                    )));
                }
                Row::Expiry {
                    at_ms,
                    seq,
                    json: record.get().as_bytes().to_vec(),
                }
            }
            Line::Header(_) | Line::End { .. } => {
                return Err(bad(format!("line {n}: a second header or end")))
            }
        };
        rows.push(row);
    }
    Ok(IdentityRows {
        identity_json,
        identity: record,
        seed: seed_bytes,
        rows,
    })
}

/// How often the retention task looks for old events.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Task "retention": at start and hourly, deletes events older than each identity's
/// `[retention]` days (nothing with the default, 0 = forever), until `stop` turns true.
pub async fn retention_task(
    store: Store,
    config: crate::config::RetentionConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (s, c) = (store.clone(), config.clone());
        let swept = tokio::task::spawn_blocking(move || -> Result<usize, StoreError> {
            let now = crate::rpc::now_ms();
            let mut n = 0;
            for identity in s.identities()? {
                let days = c.keep_days(&identity.name);
                if days > 0 {
                    let before = now.saturating_sub(days.saturating_mul(86_400_000));
                    n += s.forget_events_before(identity.id, before)?;
                }
            }
            Ok(n)
        })
        .await;
        match swept {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(events = n, "retention: old events deleted"),
            Ok(Err(e)) => tracing::warn!(cause = %e, "retention failed"),
            Err(e) => tracing::warn!(cause = %e, "retention task failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
            _ = stop.wait_for(|&s| s) => return,
        }
    }
}

/// Whether `dir` is missing or an empty directory.
fn is_fresh(dir: &Path) -> Result<bool, ArchiveError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(ArchiveError::Target {
            dir: dir.to_owned(),
            source,
        }),
    }
}

/// Imports a checked archive into `dir`, which must be missing or empty: the store is built in
/// a sibling directory and renamed into place, so a failure leaves nothing behind.
pub fn import(bytes: &[u8], dir: &Path) -> Result<IdentityRecord, ArchiveError> {
    if !is_fresh(dir)? {
        return Err(ArchiveError::TargetExists {
            dir: dir.to_owned(),
        });
    }
    let data = read_archive(bytes)?;
    let name = dir
        .file_name()
        .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned());
    let parent = dir.parent().unwrap_or(Path::new("."));
    let staging = parent.join(format!(".{name}.import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let built = (|| -> Result<(), ArchiveError> {
        let store = Store::open(&staging)?;
        store.import_identity(&data)?;
        Ok(())
    })();
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    // An empty target dir is replaced; rename cannot replace a non-empty one.
    if dir.exists() {
        if let Err(source) = std::fs::remove_dir(dir) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(ArchiveError::Target {
                dir: dir.to_owned(),
                source,
            });
        }
    }
    std::fs::rename(&staging, dir).map_err(|source| {
        let _ = std::fs::remove_dir_all(&staging);
        ArchiveError::Target {
            dir: dir.to_owned(),
            source,
        }
    })?;
    Ok(data.identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_dates() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(1_000_000_000_000), "Sun Sep  9 01:46:40 2001");
        assert_eq!(
            mail_date(1_000_000_000_000),
            "Sun, 09 Sep 2001 01:46:40 GMT"
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for bytes in [
            &b""[..],
            b"\n",
            b"{}\n",
            b"not json\n",
            b"{\"t\":\"end\",\"lines\":0,\"sha256\":\"00\"}\n",
            b"{\"t\":\"header\"}",
        ] {
            assert!(matches!(read_archive(bytes), Err(ArchiveError::Bad(_))));
        }
        let empty_sha = hex::encode(Sha256::digest(b""));
        let only_end = format!("{{\"t\":\"end\",\"lines\":0,\"sha256\":\"{empty_sha}\"}}\n");
        let err = read_archive(only_end.as_bytes()).expect_err("no header");
        assert!(err.to_string().contains("header"), "{err}");
    }
}
