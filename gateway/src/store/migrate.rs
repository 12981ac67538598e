//! Schema upgrades, run inside the transaction that opens an older file (see the store's doc).

use redb::ReadableTable;

use super::book::Book;
use super::{
    decode, ContactRecord, StoredEvent, TxError, CONTACTS, CONVERSATIONS, EVENTS, PEER_EVENTS,
};

/// Brings a file of schema version `from` up to the current one. The caller writes the new
/// version in the same transaction.
pub(super) fn upgrade(tx: &redb::WriteTransaction, from: u64) -> Result<(), TxError> {
    if from < 2 {
        give_every_contact_a_handle(tx)?;
        index_events_by_peer(tx)?;
        tracing::info!(from, to = 2, "database schema upgraded");
    }
    Ok(())
}

/// Version 1 had no handles, and contacts only for peers with a name or a profile name: every
/// contact without a handle, and every conversation's peer without a contact, gets one now (in
/// key order, so the outcome does not depend on anything but the data).
fn give_every_contact_a_handle(tx: &redb::WriteTransaction) -> Result<(), TxError> {
    let mut wanted: Vec<(u64, String)> = Vec::new();
    {
        let contacts = tx.open_table(CONTACTS)?;
        for row in contacts.iter()? {
            let (k, v) = row?;
            let contact: ContactRecord = decode("contact", v.value())?;
            if contact.handle.is_none() {
                wanted.push((k.value().0, contact.account_id));
            }
        }
        let conversations = tx.open_table(CONVERSATIONS)?;
        for row in conversations.iter()? {
            let (k, _) = row?;
            let (identity, peer) = k.value();
            if contacts.get((identity, peer))?.is_none() {
                wanted.push((identity, peer.to_owned()));
            }
        }
    }
    let mut book = Book::open(tx)?;
    for (identity, account_id) in wanted {
        book.ensure_contact(identity, &account_id, None)?;
    }
    Ok(())
}

/// Version 1 had no `peer_events` index: build it from the log. A damaged event is left out
/// (reading it fails anyway) rather than keeping the daemon from starting.
fn index_events_by_peer(tx: &redb::WriteTransaction) -> Result<(), TxError> {
    let events = tx.open_table(EVENTS)?;
    let mut peers = tx.open_table(PEER_EVENTS)?;
    let mut skipped = 0u64;
    for row in events.iter()? {
        let (k, v) = row?;
        let (identity, seq) = k.value();
        match decode::<StoredEvent>("event", v.value()) {
            Ok(event) => {
                peers.insert((identity, event.kind.conversation(), seq), ())?;
            }
            Err(_) => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(skipped, "damaged events left out of the conversation index");
    }
    Ok(())
}
