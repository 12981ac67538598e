//! Property tests of the network protocol: round trips of the onion frame, hop encryption,
//! builder → peel → reply, bencode; and arbitrary bytes into every parser without panics.

use proptest::prelude::*;
use session_proto::bencode::{decode_list, encode_list, V4Request, V4Response};
use session_proto::onion::{
    build_request, decode_frame, encode_frame, open_layer, peel, seal_snode_reply, Destination,
    EncType, Hop, LayerKey, NodeKeys, Peeled, PeerKey, ReplyHandle, ServerDestination,
};
use session_proto::storage_rpc::{Request, SeedRequest};

fn enc_type() -> impl Strategy<Value = EncType> {
    prop_oneof![Just(EncType::AesGcm), Just(EncType::XChaCha20)]
}

fn rng_from(seed: u64) -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(seed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn frame_round_trip(blob in proptest::collection::vec(any::<u8>(), 0..2048),
                        json in proptest::collection::vec(any::<u8>(), 0..256)) {
        let f = encode_frame(&blob, &json);
        let (b, j) = decode_frame(&f).expect("own frame decodes");
        prop_assert_eq!(b, &blob[..]);
        prop_assert_eq!(j, &json[..]);
        // Every strict prefix that cuts into the blob is a truncation error.
        for cut in 0..(4 + blob.len()).min(f.len()) {
            prop_assert!(decode_frame(&f[..cut]).is_err());
        }
    }

    #[test]
    fn hop_encryption_round_trip(enc in enc_type(), a in any::<[u8; 32]>(), b in any::<[u8; 32]>(),
                                 seed in any::<u64>(),
                                 msg in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let node = NodeKeys::new(b);
        let a_pub = session_proto::onion::x25519_public(&a);
        let sender = LayerKey::for_sender(enc, &a, &a_pub, &PeerKey::new(*node.public()))
            .expect("random keys are not small-order");
        let ct = sender.encrypt(&mut rng_from(seed), &msg);
        prop_assert_eq!(ct.len(), msg.len() + enc.overhead());
        let receiver = LayerKey::for_receiver(enc, &b, node.public(), &a_pub).expect("key");
        prop_assert_eq!(receiver.decrypt(&ct).expect("decrypts"), msg);
        // Any single flipped bit fails authentication.
        let mut bad = ct.clone();
        let i = (seed as usize) % bad.len();
        bad[i] ^= 1 << (seed % 8);
        prop_assert!(receiver.decrypt(&bad).is_err());
    }

    #[test]
    fn build_peel_reply_round_trip(enc in enc_type(), keys in any::<[[u8; 32]; 4]>(),
                                   seed in any::<u64>(),
                                   body in "\\PC{0,600}", reply in "\\PC{0,300}",
                                   status in 100u16..600, raw_reply in any::<bool>()) {
        let mut rng = rng_from(seed);
        let nodes: Vec<NodeKeys> = keys.iter().map(|k| NodeKeys::new(*k)).collect();
        let eds: Vec<[u8; 32]> = (0..4u8).map(|i| [i.wrapping_add(seed as u8); 32]).collect();
        let hops: Vec<Hop> = (0..3).map(|i| Hop::new(*nodes[i].public(), eds[i])).collect();
        let dest = Destination::Snode(Hop::new(*nodes[3].public(), eds[3]));
        let req = build_request(&mut rng, enc, &hops, &dest, body.as_bytes()).expect("builds");
        let mut incoming = req.body.clone();
        for (i, node) in nodes.iter().enumerate() {
            match peel(node, &incoming).expect("peels") {
                Peeled::Relay(r) => {
                    prop_assert!(i < 3);
                    prop_assert_eq!(r.destination, eds[i + 1]);
                    incoming = r.next_body;
                }
                Peeled::Final(mut f) => {
                    prop_assert_eq!(i, 3);
                    prop_assert_eq!(&f.body, body.as_bytes());
                    f.base64 = !raw_reply;
                    let sealed = seal_snode_reply(&mut rng, &f, status, reply.as_bytes());
                    let got = req.reply.open_snode_reply(&sealed).expect("client opens");
                    prop_assert_eq!(got.status, status);
                    prop_assert_eq!(got.body, reply.as_bytes());
                }
                Peeled::Proxy(_) => prop_assert!(false, "no proxy on a snode path"),
            }
        }
    }

    #[test]
    fn bencode_round_trip(a in proptest::collection::vec(any::<u8>(), 0..300),
                          b in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
                          method in "[A-Z]{1,7}", endpoint in "/[ -~]{0,40}",
                          headers in proptest::collection::btree_map("[a-z-]{1,10}", "[ -~]{0,20}", 0..4),
                          code in 100u16..600) {
        let items: Vec<&[u8]> = match &b { Some(b) => vec![&a, b], None => vec![&a] };
        let enc = encode_list(&items);
        prop_assert_eq!(decode_list(&enc).expect("decodes"), items);
        let req = V4Request { method, endpoint, headers: headers.clone(), body: b.clone() };
        prop_assert_eq!(V4Request::decode(&req.encode()).expect("request"), req);
        let resp = V4Response { code, headers, body: a };
        prop_assert_eq!(V4Response::decode(&resp.encode()).expect("response"), resp);
    }
}

fn server_dest(node: &NodeKeys) -> Destination {
    Destination::Server(ServerDestination {
        key: PeerKey::new(*node.public()),
        host: "h".into(),
        target: "/oxen/v4/lsrpc".into(),
        method: "POST".into(),
        protocol: "https".into(),
        port: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let node = NodeKeys::new([7; 32]);
        let _ = decode_frame(&bytes);
        let _ = peel(&node, &bytes);
        let _ = open_layer(&node, &bytes);
        let _ = Request::from_json(&bytes);
        let _ = SeedRequest::from_json(&bytes);
        let _ = decode_list(&bytes);
        let _ = V4Request::decode(&bytes);
        let _ = V4Response::decode(&bytes);
        let handle = ReplyHandle::new(LayerKey::derive(EncType::AesGcm, &[1; 32], &[2; 32], &[3; 32]));
        let _ = handle.open_snode_reply(&bytes);
        let _ = handle.open_v4_reply(&bytes);
        let _ = handle.open(&bytes);
    }

    #[test]
    fn framed_garbage_never_panics(blob in proptest::collection::vec(any::<u8>(), 0..200),
                                   json in prop_oneof![
                                       Just(String::new()),
                                       "\\{\"ephemeral_key\":\"[0-9a-f]{64}\"(,\"enc_type\":\"(aes-gcm|xchacha20|x)\")?(,\"hop_no\":[0-9]{1,3})?\\}",
                                       "[ -~]{0,80}",
                                   ]) {
        let node = NodeKeys::new([7; 32]);
        let _ = peel(&node, &encode_frame(&blob, json.as_bytes()));
    }

    #[test]
    fn request_json_shapes_never_panic(
        method in "(info|get_swarm|get_snodes_for_pubkey|store|retrieve|delete|delete_all|delete_before|expire|expire_all|get_expiries|oxend_request|batch|sequence|x)",
        params in proptest::collection::btree_map(
            "(pubkey|pubKey|namespace|timestamp|ttl|expiry|data|signature|sig_timestamp|pubkey_ed25519|subaccount|subaccount_sig|last_hash|lastHash|max_count|max_size|messages|required|shorten|extend|before|endpoint|params|requests)",
            prop_oneof![
                Just(serde_json::Value::Null),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<u64>().prop_map(serde_json::Value::from),
                any::<bool>().prop_map(serde_json::Value::from),
                "[ -~]{0,90}".prop_map(serde_json::Value::from),
                "05[0-9a-f]{64}".prop_map(serde_json::Value::from),
                "[A-Za-z0-9+/]{43}".prop_map(|s| serde_json::json!([s])),
                Just(serde_json::json!([{"method":"info","params":{}}])),
                Just(serde_json::json!("all")),
            ],
            0..8)) {
        let body = serde_json::json!({"method": method, "params": params});
        if let Ok(req) = Request::from_json(body.to_string().as_bytes()) {
            let _ = req.verify_signature();
            let again = Request::from_json(&req.to_json()).expect("own serialization parses");
            prop_assert_eq!(again, req);
        }
    }

    #[test]
    fn server_layer_garbage_never_panics(seed in any::<u64>(), cut in any::<usize>(), flip in any::<usize>()) {
        // Valid server-bound requests, truncated or bit-flipped, into the server-side open.
        let server = NodeKeys::new([9; 32]);
        let relay = NodeKeys::new([8; 32]);
        let mut rng = rng_from(seed);
        let req = build_request(&mut rng, EncType::AesGcm, &[Hop::new(*relay.public(), [1; 32])],
                                &server_dest(&server), b"le").expect("builds");
        let mut body = req.body.clone();
        let i = flip % body.len();
        body[i] ^= 0x55;
        body.truncate(cut % (body.len() + 1));
        let _ = peel(&relay, &body);
        let _ = session_proto::onion::open_server_request(&server, &body);
    }
}
