//! Group info and members configs: the libsession config vectors of groups-*.json, pushes read
//! back by members, forged and foreign configs refused, and re-encryption after a rekey.

use super::super::test_vectors::*;
use super::super::GroupAdminKeys;
use super::*;
use crate::config::crypt;
use crate::config::data::Scalar;
use crate::config::message::{ConfigMessage, DEFAULT_LAG};
use crate::err::ConfigError;
use crate::keys::IdentityKeys;

#[test]
fn libsession_config_vectors() {
    let v = libsession("config_encrypt");
    let key = hex32(&v["key_base"]);
    let msg = v["message_ascii"].as_str().expect("ascii").as_bytes();
    let ct = crypt::encrypt(msg, &key, v["domain"].as_str().expect("domain"));
    assert_eq!(hex::encode(&ct), v["ciphertext"]);
    assert_eq!(
        hex::encode(&ct[ct.len() - 24..]),
        v["nonce_is_last_24_bytes"]
    );
    assert_eq!(
        hex::encode(crypt::nonce(msg, "test-suite2")),
        v["nonce_with_domain_test-suite2"]
    );

    let v = libsession("config_padded_size");
    for case in v["cases_size_overhead_result"].as_array().expect("cases") {
        let n = |i: usize| case[i].as_u64().expect("int") as usize;
        assert_eq!(crypt::padded_size(n(0), n(1)), n(2), "{case}");
    }

    let v = libsession("config_message_serialization_and_signature");
    let sk64 = hex(&v["ed25519_secret_key_64"]);
    let seed: [u8; 32] = sk64[..32].try_into().expect("32");
    let signer = ed25519_dalek::SigningKey::from_bytes(&seed);
    let mut m = ConfigMessage::new_mutable(10, DEFAULT_LAG);
    let d = m.data_mut().expect("mutable");
    let bar = fields::dict_mut(d, b"bar");
    bar.insert(
        b"".to_vec(),
        Field::Set(
            [
                Scalar::Int(42),
                Scalar::Str(b"a".to_vec()),
                Scalar::Str(b"b".to_vec()),
            ]
            .into(),
        ),
    );
    fields::set_int_if(bar, b"asdf", 123, true);
    fields::set_bytes(bar, b"xyz", b"abc");
    fields::set_int_if(d, b"foo", 123, true);
    let bytes = m.serialize(Some(&signer));
    let signed = v["signed_part_ascii"].as_str().expect("ascii").as_bytes();
    let sig = hex(&v["signature"]);
    let mut want = signed.to_vec();
    want.extend_from_slice(b"1:~64:");
    want.extend_from_slice(&sig);
    want.push(b'e');
    assert_eq!(bytes, want);
    // And it parses back only with the right verifier.
    let vk = signer.verifying_key();
    assert!(ConfigMessage::parse(&bytes, Some(&vk), DEFAULT_LAG, true).is_ok());
    let other = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
    assert!(ConfigMessage::parse(&bytes, Some(&other), DEFAULT_LAG, true).is_err());
}

struct Group {
    group: GroupAdminKeys,
    admin_id: IdentityKeys,
    m1: IdentityKeys,
    m2: IdentityKeys,
    admin: GroupKeys,
    keys0: Vec<u8>,
}

const NOW: u64 = 1_700_000_000_000;

fn group() -> Group {
    let group = GroupAdminKeys::from_seed(&[21; 32]);
    let admin_id = IdentityKeys::from_seed(&[22; 32]);
    let m1 = IdentityKeys::from_seed(&[23; 32]);
    let m2 = IdentityKeys::from_seed(&[24; 32]);
    let mut admin = GroupKeys::for_admin(Some(&admin_id), group.clone()).expect("admin");
    let all = [*admin_id.account_id(), *m1.account_id(), *m2.account_id()];
    let keys0 = admin.rekey(&all).expect("rekey");
    admin.load_key_message("k0", &keys0, NOW).expect("own keys");
    Group {
        group,
        admin_id,
        m1,
        m2,
        admin,
        keys0,
    }
}

fn member_keys(g: &Group, who: &IdentityKeys) -> GroupKeys {
    let mut k = GroupKeys::for_member(who, g.group.id()).expect("member");
    k.load_key_message("k0", &g.keys0, NOW).expect("keys");
    k
}

/// The admin's info and members configs after creating the group.
fn created(g: &Group) -> (Config, Config) {
    let mut info_cfg = new_config(INFO, &g.admin);
    info_cfg
        .edit(|d| {
            set_name(d, "Weekend plans")?;
            set_description(d, "who brings what")?;
            set_created(d, 1_700_000_000);
            Ok::<_, ConfigError>(())
        })
        .expect("admin edits")
        .expect("valid values");
    let mut members_cfg = new_config(MEMBERS, &g.admin);
    members_cfg
        .edit(|d| {
            let mut me = Member::new(*g.admin_id.account_id());
            me.name = "Admin".into();
            me.admin = true;
            set_member(d, &me)?;
            for (who, name) in [(&g.m1, "One"), (&g.m2, "")] {
                let mut m = Member::new(*who.account_id());
                m.name = name.into();
                m.invite = Some(Status::NotSent);
                set_member(d, &m)?;
            }
            Ok::<_, ConfigError>(())
        })
        .expect("admin edits")
        .expect("valid values");
    (info_cfg, members_cfg)
}

fn pushed(c: &mut Config) -> Vec<u8> {
    let p = c.push().expect("push");
    assert_eq!(p.messages.len(), 1);
    p.messages.into_iter().next().expect("one message")
}

#[test]
fn members_read_what_the_admin_pushes() {
    let g = group();
    let (mut info_cfg, mut members_cfg) = created(&g);
    let info_msg = pushed(&mut info_cfg);
    let members_msg = pushed(&mut members_cfg);

    let mk = member_keys(&g, &g.m1);
    let mut info_r = new_config(INFO, &mk);
    let mut members_r = new_config(MEMBERS, &mk);
    assert!(info_r.is_read_only());
    let rep = info_r.merge(&[("hi", &info_msg)], NOW);
    assert_eq!(rep.accepted, ["hi"], "{:?}", rep.skipped);
    let i = info(info_r.data());
    assert_eq!(i.name.as_deref(), Some("Weekend plans"));
    assert_eq!(i.description.as_deref(), Some("who brings what"));
    assert_eq!(i.created_s, Some(1_700_000_000));
    assert!(!i.destroyed);
    let rep = members_r.merge(&[("hm", &members_msg)], NOW);
    assert_eq!(rep.accepted, ["hm"]);
    let list = members(members_r.data());
    assert_eq!(list.len(), 3);
    let admin = member(members_r.data(), g.admin_id.account_id()).expect("admin entry");
    assert!(admin.admin);
    assert_eq!(admin.invite, None);
    let m2 = member(members_r.data(), g.m2.account_id()).expect("m2 entry");
    assert_eq!((m2.name.as_str(), m2.invite), ("", Some(Status::NotSent)));
    // A member may not edit.
    assert!(matches!(
        info_r.edit(|d| set_name(d, "mine now")),
        Err(ConfigError::ReadOnly)
    ));
}

#[test]
fn forged_and_foreign_configs_are_skipped() {
    let g = group();
    let mk = member_keys(&g, &g.m1);
    // A member who holds the group key signs a config with its own key.
    let mut forged_keys = config_keys(&mk);
    forged_keys.signer = Some(g.m1.signing_key().clone());
    forged_keys.verifier = None;
    let mut forged = Config::new(INFO, forged_keys);
    forged
        .edit(|d| set_name(d, "Pwned"))
        .expect("edit")
        .expect("ok");
    let forged_msg = pushed(&mut forged);
    // Unsigned (a member's writer without a signer).
    let mut unsigned_keys = config_keys(&mk);
    unsigned_keys.verifier = None;
    let mut unsigned = Config::new(INFO, unsigned_keys);
    unsigned
        .edit(|d| set_name(d, "Unsigned"))
        .expect("edit")
        .expect("ok");
    let unsigned_msg = pushed(&mut unsigned);
    // Another group's admin config: encrypted and signed for that group.
    let other = GroupAdminKeys::from_seed(&[99; 32]);
    let mut ok = GroupKeys::for_admin(None, other).expect("other");
    ok.rekey(&[*g.m1.account_id()]).expect("rekey");
    let mut foreign = new_config(INFO, &ok);
    foreign
        .edit(|d| set_name(d, "Elsewhere"))
        .expect("edit")
        .expect("ok");
    let foreign_msg = pushed(&mut foreign);

    let mut r = new_config(INFO, &mk);
    let rep = r.merge(
        &[
            ("forged", &forged_msg),
            ("unsigned", &unsigned_msg),
            ("foreign", &foreign_msg),
            ("junk", b"not a config at all"),
        ],
        NOW,
    );
    assert!(rep.accepted.is_empty(), "{rep:?}");
    let reasons: Vec<(&str, &ConfigError)> =
        rep.skipped.iter().map(|(h, e)| (h.as_str(), e)).collect();
    // The config layer reports a signature failure as a message that does not parse.
    for h in ["forged", "unsigned", "junk"] {
        assert!(reasons.iter().any(|(x, _)| *x == h), "{h}: {reasons:?}");
    }
    assert!(
        reasons.contains(&("foreign", &ConfigError::Decrypt)),
        "{reasons:?}"
    );
    assert_eq!(rep.skipped.len(), 4);
    assert_eq!(info(r.data()), Info::default());
}

#[test]
fn after_a_rekey_configs_move_to_the_new_key() {
    let mut g = group();
    let (mut info_cfg, _) = created(&g);
    let first = pushed(&mut info_cfg);
    info_cfg.confirm_pushed(info_cfg.seqno(), &["i0".into()]);
    // Remove member 2: rekey without them, re-push info under the new key.
    let keys1 = g
        .admin
        .rekey(&[*g.admin_id.account_id(), *g.m1.account_id()])
        .expect("rekey");
    let mut info_cfg = with_keys(&mut info_cfg, &g.admin, NOW).expect("reload");
    info_cfg
        .edit(|d| set_name(d, "Weekend plans (2)"))
        .expect("edit")
        .expect("ok");
    let second = pushed(&mut info_cfg);
    assert!(info_cfg
        .push()
        .expect("push")
        .obsolete
        .contains(&"i0".to_string()));

    let mut m1 = member_keys(&g, &g.m1);
    m1.load_key_message("k1", &keys1, NOW + 1).expect("k1");
    let mut r1 = new_config(INFO, &m1);
    let rep = r1.merge(&[("i0", &first), ("i1", &second)], NOW);
    assert!(rep.skipped.is_empty(), "{rep:?}");
    assert_eq!(info(r1.data()).name.as_deref(), Some("Weekend plans (2)"));

    let mut m2 = member_keys(&g, &g.m2);
    m2.load_key_message("k1", &keys1, NOW + 1).expect("k1");
    let mut r2 = new_config(INFO, &m2);
    let rep = r2.merge(&[("i0", &first), ("i1", &second)], NOW);
    assert_eq!(rep.accepted, ["i0"]);
    assert_eq!(rep.skipped, [("i1".to_string(), ConfigError::Decrypt)]);
    assert_eq!(info(r2.data()).name.as_deref(), Some("Weekend plans"));
}

#[test]
fn typed_views_refuse_bad_values_and_skip_bad_entries() {
    let g = group();
    let (mut info_cfg, mut members_cfg) = created(&g);
    let long = "x".repeat(101);
    assert!(info_cfg
        .edit(|d| set_name(d, &long))
        .expect("edit")
        .is_err());
    let long_desc = "x".repeat(2001);
    assert!(info_cfg
        .edit(|d| set_description(d, &long_desc))
        .expect("edit")
        .is_err());
    info_cfg
        .edit(|d| {
            set_expiry_timer(d, 3600);
            set_delete_before(d, 1_700_000_100);
            destroy(d);
        })
        .expect("edit");
    let i = info(info_cfg.data());
    assert_eq!(i.expiry_timer_s, Some(3600));
    assert_eq!(i.delete_before_s, Some(1_700_000_100));
    assert_eq!(i.delete_attachments_before_s, Some(1_700_000_100));
    assert!(i.destroyed);

    let not_05 = Member::new(*g.group.id());
    assert!(members_cfg
        .edit(|d| set_member(d, &not_05))
        .expect("edit")
        .is_err());
    members_cfg
        .edit(|d| {
            // Entries a reader must skip: a short key, a non-dict value, a 03 key.
            let m = fields::dict_mut(d, b"m");
            fields::set_bytes(fields::dict_mut(m, b"short"), b"n", b"x");
            fields::set_int_if(m, &[5u8; 33], 1, true);
            fields::set_bytes(fields::dict_mut(m, g.group.id().as_bytes()), b"n", b"g");
            // An unknown per-member key survives an update of that member.
            let e = fields::dict_mut(m, g.m1.account_id().as_bytes());
            fields::set_int_if(e, b"Z", 7, true);
        })
        .expect("edit");
    assert_eq!(members(members_cfg.data()).len(), 3);
    members_cfg
        .edit(|d| {
            let mut m1 = member(d, g.m1.account_id()).expect("m1");
            m1.invite = None;
            m1.promotion = Some(Status::Sent);
            m1.removal = Some(Removal::MemberAndMessages);
            set_member(d, &m1)
        })
        .expect("edit")
        .expect("ok");
    let m1 = member(members_cfg.data(), g.m1.account_id()).expect("m1");
    assert_eq!(
        (m1.invite, m1.promotion, m1.removal),
        (None, Some(Status::Sent), Some(Removal::MemberAndMessages))
    );
    let e = fields::dict(
        fields::dict(members_cfg.data(), b"m").expect("m"),
        g.m1.account_id().as_bytes(),
    )
    .expect("entry");
    assert_eq!(fields::int(e, b"Z"), Some(7));
    members_cfg
        .edit(|d| assert!(erase_member(d, g.m2.account_id())))
        .expect("edit");
    assert!(member(members_cfg.data(), g.m2.account_id()).is_none());
}
