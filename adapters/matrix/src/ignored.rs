//! `m.ignored_user_list`: the Matrix face of blocking. The list is the daemon's blocked
//! contacts (which the account's other devices share through config sync); a client that
//! changes it blocks the ghosts it added and unblocks the ones it removed.

use serde_json::{json, Map, Value};
use sessiond_api::v1::{BlockContactRequest, UnblockContactRequest};

use crate::auth::Me;
use crate::err::MatrixError;
use crate::ids::{parse_user, user_id, LocalUser};

/// The account data type.
pub(crate) const KIND: &str = "m.ignored_user_list";

/// The content of `m.ignored_user_list`: every blocked contact as its ghost user.
pub(crate) async fn content(me: &Me, server: &str) -> Result<Value, MatrixError> {
    let contacts = me.client.all_contacts(me.name()).await?;
    let ignored: Map<String, Value> = contacts
        .into_iter()
        .filter(|c| c.blocked)
        .map(|c| (user_id(&c.account_id, server), json!({})))
        .collect();
    Ok(json!({ "ignored_users": ignored }))
}

/// The Account IDs a client's `m.ignored_user_list` names. Users that are not Session contacts
/// of this server (other servers, identities) cannot be blocked and are left out; a body
/// without an `ignored_users` object is M_BAD_JSON.
pub(crate) fn wanted(content: &Value, server: &str) -> Result<Vec<String>, MatrixError> {
    let users = content
        .get("ignored_users")
        .and_then(Value::as_object)
        .ok_or_else(|| MatrixError::BadJson("ignored_users must be an object".into()))?;
    let mut out: Vec<String> = users
        .keys()
        .filter_map(|u| match parse_user(u, server, false) {
            Some(LocalUser::Ghost(account)) => Some(account),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Blocks and unblocks so that the blocked contacts are exactly `wanted`.
pub(crate) async fn apply(me: &Me, wanted: &[String]) -> Result<(), MatrixError> {
    let contacts = me.client.all_contacts(me.name()).await?;
    let mut convs = me.client.conversations.clone();
    for c in contacts
        .iter()
        .filter(|c| c.blocked && !wanted.contains(&c.account_id))
    {
        convs
            .unblock_contact(UnblockContactRequest {
                identity: me.name().to_owned(),
                account_id: c.account_id.clone(),
            })
            .await?;
    }
    for account in wanted {
        if contacts
            .iter()
            .any(|c| &c.account_id == account && c.blocked)
        {
            continue;
        }
        convs
            .block_contact(BlockContactRequest {
                identity: me.name().to_owned(),
                account_id: account.clone(),
            })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_ghosts_of_this_server_only() {
        let a = format!("05{}", "a".repeat(64));
        let b = format!("05{}", "B".repeat(64));
        let body = json!({ "ignored_users": {
            format!("@{a}:s"): {},
            format!("@{b}:s"): {},
            format!("@{a}:other"): {},
            "@alice:s": {},
            "nonsense": {},
        }});
        assert_eq!(
            wanted(&body, "s").expect("list"),
            vec![a, b.to_ascii_lowercase()]
        );
        for bad in [json!({}), json!({"ignored_users": []}), json!([1])] {
            assert!(
                matches!(wanted(&bad, "s"), Err(MatrixError::BadJson(_))),
                "{bad}"
            );
        }
    }
}
