//! Admin signatures against the derived vectors; every control message built, read back, and
//! refused when forged or malformed.

use super::super::test_vectors::*;
use super::*;

struct Cast {
    group: GroupAdminKeys,
    m1: IdentityKeys,
    m2: IdentityKeys,
}

fn cast() -> Cast {
    let d = derived();
    let i = &d["inputs"];
    Cast {
        group: GroupAdminKeys::from_seed(&hex32(&i["group_seed"])),
        m1: IdentityKeys::from_seed(&hex32(&i["member1_seed"])),
        m2: IdentityKeys::from_seed(&hex32(&i["member2_seed"])),
    }
}

fn update(c: &Content) -> &GroupUpdateMessage {
    c.data_message
        .as_ref()
        .and_then(|d| d.group_update_message.as_ref())
        .expect("a group update")
}

const TS: u64 = 1_700_000_000_123;

#[test]
fn derived_admin_signature_vectors() {
    let c = cast();
    let v = &derived()["admin_signatures"];
    assert_eq!(v["timestamp_ms"].as_u64(), Some(TS));
    let check = |name: &str, signed: Vec<u8>| {
        assert_eq!(
            signed,
            v[name]["signed_ascii"].as_str().expect("ascii").as_bytes(),
            "{name}"
        );
        let sig = c.group.keys().sign(&signed);
        assert_eq!(hex::encode(sig.to_bytes()), v[name]["sig"], "{name}");
    };
    check(
        "invite_for_member1",
        invite_signed_bytes(c.m1.account_id(), TS),
    );
    check(
        "member_change_REMOVED",
        member_change_signed_bytes(MemberChangeType::Removed, TS),
    );
    check(
        "info_change_NAME",
        info_change_signed_bytes(InfoChangeType::Name, TS),
    );
    check(
        "delete_content_member2",
        delete_content_signed_bytes::<String, String>(TS, &[c.m2.account_id().to_string()], &[]),
    );
    // The builders put the same signatures in their messages.
    let inv = invite(&c.group, "Group", c.m1.account_id(), TS).expect("invite");
    let sig = &update(&inv)
        .invite_message
        .as_ref()
        .expect("invite")
        .admin_signature;
    assert_eq!(hex::encode(sig), v["invite_for_member1"]["sig"]);
    let mc = member_change(
        &c.group,
        MemberChangeType::Removed,
        &[*c.m2.account_id()],
        false,
        TS,
    );
    let sig = &update(&mc)
        .member_change_message
        .as_ref()
        .expect("mc")
        .admin_signature;
    assert_eq!(hex::encode(sig), v["member_change_REMOVED"]["sig"]);
    let del = delete_member_content(Some(&c.group), &[*c.m2.account_id()], &[], TS);
    let sig = update(&del)
        .delete_member_content
        .as_ref()
        .expect("del")
        .admin_signature
        .as_ref();
    assert_eq!(
        sig.map(hex::encode).as_deref(),
        v["delete_content_member2"]["sig"].as_str()
    );
    // And the invite's credentials are the derived vector's.
    let auth = &update(&inv)
        .invite_message
        .as_ref()
        .expect("invite")
        .member_auth_data;
    assert_eq!(
        hex::encode(auth),
        derived()["subaccount_member1"]["memberAuthData_hex"]
    );
}

#[test]
fn invites_are_checked_for_the_invitee_and_the_timestamp() {
    let c = cast();
    let admin = *c.m2.account_id(); // the sender's own ID does not matter, only its prefix
    let inv = invite(&c.group, "Friends", c.m1.account_id(), TS).expect("invite");
    assert_eq!(inv.sig_timestamp, Some(TS));
    let got = read_direct_update(&c.m1, &admin, TS, update(&inv)).expect("valid invite");
    let GroupUpdate::Invite(i) = got else {
        panic!("not an invite: {got:?}")
    };
    assert_eq!(i.group_id, *c.group.id());
    assert_eq!(i.name, "Friends");
    SubaccountSigner::new(&c.m1, c.group.public_key(), &i.auth).expect("usable credentials");

    // Replayed with another timestamp, or read by someone else: the signature fails.
    assert!(matches!(
        read_direct_update(&c.m1, &admin, TS + 1, update(&inv)),
        Err(GroupError::BadSignature { .. })
    ));
    assert!(matches!(
        read_direct_update(&c.m2, &admin, TS, update(&inv)),
        Err(GroupError::BadSignature { .. })
    ));
    // Tampered pieces.
    let tamper = |f: &dyn Fn(&mut GroupUpdateInviteMessage)| {
        let mut u = update(&inv).clone();
        f(u.invite_message.as_mut().expect("invite"));
        read_direct_update(&c.m1, &admin, TS, &u)
    };
    assert!(matches!(
        tamper(&|m| m.member_auth_data[10] ^= 1),
        Err(GroupError::Subaccount { .. })
    ));
    assert!(matches!(
        tamper(&|m| m.member_auth_data.truncate(99)),
        Err(GroupError::Subaccount { .. })
    ));
    assert!(matches!(
        tamper(&|m| m.admin_signature.truncate(10)),
        Err(GroupError::BadSignature { .. })
    ));
    // Signed by a member's key instead of the group's.
    assert!(matches!(
        tamper(&|m| {
            m.admin_signature =
                c.m2.sign(&invite_signed_bytes(c.m1.account_id(), TS))
                    .to_bytes()
                    .to_vec()
        }),
        Err(GroupError::BadSignature { .. })
    ));
    // Another group's ID with this group's signature.
    let other = GroupAdminKeys::from_seed(&[4; 32]);
    assert!(matches!(
        tamper(&|m| m.group_session_id = other.id().to_string()),
        Err(GroupError::BadSignature { .. })
    ));
    assert!(matches!(
        tamper(&|m| m.group_session_id = format!("05{}", "11".repeat(32))),
        Err(GroupError::LegacyGroup { .. })
    ));
    assert!(matches!(
        tamper(&|m| m.group_session_id = "03zz".into()),
        Err(GroupError::Invalid { .. })
    ));
    // From a non-05 sender.
    assert!(read_direct_update(&c.m1, c.group.id(), TS, update(&inv)).is_err());
}

#[test]
fn promotions_give_the_group_keys() {
    let c = cast();
    let p = promote(&c.group, "Friends", TS);
    let got = read_direct_update(&c.m1, c.m2.account_id(), TS, update(&p)).expect("promotion");
    let GroupUpdate::Promote(pr) = got else {
        panic!("not a promotion")
    };
    assert_eq!(pr.group.id(), c.group.id());
    assert!(!format!("{pr:?}").contains(&hex::encode(c.group.seed())));
    let mut u = update(&p).clone();
    u.promote_message
        .as_mut()
        .expect("p")
        .group_identity_seed
        .pop();
    assert!(read_direct_update(&c.m1, c.m2.account_id(), TS, &u).is_err());
    // Promotions and invites never count inside the group.
    assert!(read_group_update(c.group.public_key(), TS, update(&p)).is_err());
    let inv = invite(&c.group, "x", c.m1.account_id(), TS).expect("invite");
    assert!(read_group_update(c.group.public_key(), TS, update(&inv)).is_err());
}

#[test]
fn in_group_updates_verify_their_admin_signatures() {
    let c = cast();
    let pk = c.group.public_key();
    let added = [*c.m1.account_id(), *c.m2.account_id()];
    let mc = member_change(&c.group, MemberChangeType::Added, &added, true, TS);
    assert_eq!(
        read_group_update(pk, TS, update(&mc)),
        Ok(GroupUpdate::MemberChange {
            kind: MemberChangeType::Added,
            members: added.to_vec(),
            history_shared: true,
        })
    );
    assert!(
        read_group_update(pk, TS - 1, update(&mc)).is_err(),
        "replayed later"
    );
    let other = GroupAdminKeys::from_seed(&[4; 32]);
    assert!(
        read_group_update(other.public_key(), TS, update(&mc)).is_err(),
        "other group"
    );
    // A member forging an admin notice.
    let mut forged = update(&mc).clone();
    forged
        .member_change_message
        .as_mut()
        .expect("mc")
        .admin_signature =
        c.m1.sign(&member_change_signed_bytes(MemberChangeType::Added, TS))
            .to_bytes()
            .to_vec();
    assert!(matches!(
        read_group_update(pk, TS, &forged),
        Err(GroupError::BadSignature { .. })
    ));
    // The type is signed: flipping REMOVED to PROMOTED breaks it; unknown types are refused.
    let mut flipped = update(&mc).clone();
    flipped.member_change_message.as_mut().expect("mc").r#type = 3;
    assert!(read_group_update(pk, TS, &flipped).is_err());
    let mut unknown = update(&mc).clone();
    unknown.member_change_message.as_mut().expect("mc").r#type = 9;
    assert!(matches!(
        read_group_update(pk, TS, &unknown),
        Err(GroupError::Invalid { .. })
    ));
    let mut bad_ids = update(&mc).clone();
    bad_ids
        .member_change_message
        .as_mut()
        .expect("mc")
        .member_session_ids = vec!["nope".into()];
    assert!(matches!(
        read_group_update(pk, TS, &bad_ids),
        Err(GroupError::Invalid { .. })
    ));

    let ic = info_change(&c.group, InfoChangeType::Name, Some("New name"), None, TS);
    assert_eq!(
        read_group_update(pk, TS, update(&ic)),
        Ok(GroupUpdate::InfoChange {
            kind: InfoChangeType::Name,
            name: Some("New name".into()),
            expiration: None,
        })
    );
    let mut flipped = update(&ic).clone();
    flipped.info_change_message.as_mut().expect("ic").r#type =
        InfoChangeType::DisappearingMessages as i32;
    assert!(read_group_update(pk, TS, &flipped).is_err());

    let [note, left] = member_left(TS);
    assert_eq!(note.sig_timestamp, Some(TS));
    assert_eq!(left.sig_timestamp, Some(TS + 1));
    assert_eq!(
        read_group_update(pk, TS, update(&note)),
        Ok(GroupUpdate::MemberLeftNotification)
    );
    assert_eq!(
        read_group_update(pk, TS + 1, update(&left)),
        Ok(GroupUpdate::MemberLeft)
    );
    let resp = invite_response(true, TS);
    assert_eq!(
        read_group_update(pk, TS, update(&resp)),
        Ok(GroupUpdate::InviteResponse { approved: true })
    );
}

#[test]
fn delete_content_with_and_without_admin() {
    let c = cast();
    let pk = c.group.public_key();
    let hashes = vec!["h1".to_owned(), "h2".to_owned()];
    let by_admin = delete_member_content(Some(&c.group), &[*c.m2.account_id()], &hashes, TS);
    assert_eq!(
        read_group_update(pk, TS, update(&by_admin)),
        Ok(GroupUpdate::DeleteMemberContent {
            members: vec![*c.m2.account_id()],
            hashes: hashes.clone(),
            by_admin: true,
        })
    );
    // An extra hash slipped in after signing breaks the signature.
    let mut more = update(&by_admin).clone();
    more.delete_member_content
        .as_mut()
        .expect("del")
        .message_hashes
        .push("h3".into());
    assert!(matches!(
        read_group_update(pk, TS, &more),
        Err(GroupError::BadSignature { .. })
    ));
    // A member's own deletion: only hashes, any member list is ignored.
    let own = delete_member_content(None, &[*c.m2.account_id()], &hashes, TS);
    assert_eq!(
        read_group_update(pk, TS, update(&own)),
        Ok(GroupUpdate::DeleteMemberContent {
            members: vec![],
            hashes,
            by_admin: false,
        })
    );
}

#[test]
fn empty_or_double_updates_are_refused() {
    let c = cast();
    let pk = c.group.public_key();
    let empty = GroupUpdateMessage::default();
    assert!(read_group_update(pk, TS, &empty).is_err());
    assert!(read_direct_update(&c.m1, c.m2.account_id(), TS, &empty).is_err());
    let mut double = update(&invite_response(true, TS)).clone();
    double.member_left_message = Some(GroupUpdateMemberLeftMessage {});
    assert!(matches!(
        read_group_update(pk, TS, &double),
        Err(GroupError::Invalid { .. })
    ));
    // In-group updates sent one-to-one are refused.
    let left = &member_left(TS)[1];
    assert!(read_direct_update(&c.m1, c.m2.account_id(), TS, update(left)).is_err());
}
