#!/usr/bin/env python3
"""Writes the seed corpora fuzz/seeds/<target>/ from the test vectors in proto/session/tests/data.

Run from anywhere: python3 fuzz/seeds.py. Seeds are small files named by the SHA-1 of their
bytes (libFuzzer's convention), so re-running is idempotent. Targets whose input starts with a
selector byte get the vector once per selector that makes sense for it.
"""
import hashlib
import json
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "proto", "session", "tests", "data")
OUT = os.path.join(HERE, "seeds")
MAX_SEED = 4096

seeds = {}


def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    if 0 < len(data) <= MAX_SEED:
        seeds.setdefault(target, set()).add(bytes(data))


def strings(x, path=""):
    """(path, string) for every string in a JSON value."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from strings(v, path + "." + k)
    elif isinstance(x, list):
        for v in x:
            yield from strings(v, path + "[]")
    elif isinstance(x, str):
        yield path, x


def unhex(s):
    try:
        return bytes.fromhex(s)
    except ValueError:
        return None


def load(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return json.load(f)


def field(name, pattern):
    """Strings of file `name` whose path matches `pattern`."""
    rx = re.compile(pattern)
    return [v for p, v in strings(load(name)) if rx.search(p)]


def hexes(name, pattern):
    return [b for b in (unhex(v) for v in field(name, pattern)) if b is not None]


# Onion: whole frames, layer plaintexts, replies.
for f in hexes("network-onion-hop-encryption.json", r"frame_.*_hex$") + hexes(
    "network-derived.json", r"http_post_body_to_guard_hex$"
):
    add("onion_frame", f)
    add("onion_relay", b"\x00" + f)
for p in hexes("network-derived.json", r"plaintext_hex$"):
    add("onion_frame", p)
    add("onion_relay", b"\x01" + p)
    add("onion_relay", b"\x03" + p)
for r in field("network-derived.json", r"response\.plaintext$"):
    add("onion_client", b"\x01" + r.encode())
    add("storage_rpc_reply", b"\x02" + json.loads(r)["body"].encode())
for e in field("network-onion-v4-bencode.json", r"encoded$"):
    add("bencode", e)
    add("onion_client", b"\x01" + e.encode())
add("onion_client", b"\x00" + field("network-derived.json", r"http_body_base64$")[0].encode())

# Storage RPC: the request bodies of the vectors; replies built from the vectors' values.
for body in field("network-derived.json", r"request_body$"):
    add("storage_rpc_request", body)
ident = load("network-derived.json")["identity"]
msg_hash = field("network-derived.json", r"message_hash\[\]\.hash$")[0]
snode = {
    "address": "",
    "pubkey_x25519": ident["x25519_pubkey_hex(ed->x birational map)"],
    "pubkey_ed25519": ident["ed25519_pubkey_hex"],
    "port_https": 22021,
    "ip": "127.0.0.1",
}
retrieve = {
    "messages": [{"hash": msg_hash, "timestamp": 1700000000000, "expiration": 1701209600000,
                  "data": "YWJjIDEyMw=="}],
    "more": False, "t": 1700000000123, "hf": [19, 3],
}
swarm = {"snodes": [snode], "swarm": "64", "t": 1700000000123, "hf": [19, 3]}
store = {"swarm": {ident["ed25519_pubkey_hex"]: {"hash": msg_hash, "signature": "AA=="},
                   "00" * 32: {"failed": True, "code": 502, "reason": "timeout"}},
         "hash": msg_hash, "t": 1700000000123, "hf": [19, 3]}
add("storage_rpc_reply", b"\x00" + json.dumps(retrieve).encode())
add("storage_rpc_reply", b"\x01" + json.dumps(swarm).encode())
add("storage_rpc_reply", b"\x03" + json.dumps(store).encode())
add("storage_rpc_reply", b"\x09" + json.dumps({"results": [{"code": 200, "body": retrieve}]}).encode())
add("storage_rpc_request", json.dumps({"method": "retrieve", "params": {
    "pubkey": ident["session_id"], "namespace": 0, "timestamp": 1700000000000,
    "signature": field("network-derived.json", r"signature_b64$")[0],
    "pubkey_ed25519": ident["ed25519_pubkey_hex"]}}))

# One-to-one messages: the Content protobufs (8-byte timestamp first), the sealed boxes.
for name in ["derived-1o1-wire-message.json", "communities-room-message.json",
             "communities-blinded-dm.json"]:
    for c in hexes(name, r"content_protobuf_hex$") + hexes(name, r"padded(_content)?_hex$"):
        add("message_content", struct.pack("<Q", 1700000000123) + c)
        add("message_content", struct.pack("<Q", 0) + c)
        add("community", b"\x07" + c)
        add("community", b"\x06" + c)
        add("community", b"\x01" + c)
for c in hexes("derived-1o1-wire-message.json", r"sealed_box_ciphertext_hex$") + hexes(
    "session-protocol-1o1.json", r"ciphertext_hex$"
):
    add("message_receive", c)

# Mnemonic.
for w in field("mnemonic.json", r"words$"):
    add("mnemonic", w)

# Config messages and bt.
for name in ["config-message.json", "config-derived-contacts-convo.json"]:
    for m in hexes(name, r"serialized_hex$"):
        add("config_bt", m)
        add("config_message", m)
        add("config_merge", bytes([0, 0]) + m)
        add("config_merge", bytes([1, 0]) + m)
        add("group_configs", b"\x01" + m)
        add("group_configs", b"\x03" + m)
for m in field("config-userprofile.json", r"serialized_printable$"):
    add("config_bt", m)
    add("config_merge", bytes([0, 0]) + m.encode())
for c in hexes("config-compression.json", r"output_hex$"):
    add("config_message", c)
for w in hexes("config-userprofile.json", r"wrapped_push_hex$"):
    add("config_message", w)
    add("config_merge", bytes([4, 0]) + w)

# Groups.
for m in hexes("groups-derived.json", r"message_hex$"):
    add("group_keys", b"\x00" + m)
    add("group_keys", b"\x01" + m)
    add("config_bt", m)
for m in hexes("groups-derived.json", r"kicked_message.*message_hex$") + hexes(
    "groups-libsession-tests.json", r"encoded_simple_hex$"
):
    add("group_message", b"\x03" + m)
for e in hexes("groups-derived.json", r"envelope_hex$"):
    add("group_message", b"\x01" + e)
    add("group_message", b"\x11" + e)
for c in hexes("groups-derived.json", r"ciphertext.*_hex$"):
    add("group_message", b"\x00" + c)
for c in hexes("groups-derived.json", r"content_hex$"):
    add("group_message", b"\x04" + c)

# Communities.
for u in field("communities-url-parsing.json", r"\.url$"):
    add("community", b"\x03" + u.encode())
auth = load("sogs-auth-headers.json")
for kind in ["blinded", "unblinded"]:
    add("community", b"\x04" + "\n".join([
        auth[kind]["X-SOGS-Pubkey"], auth["nonce_base64"], str(auth["timestamp"]),
        auth[kind]["X-SOGS-Signature_no_body"]]).encode())
room = load("communities-room-message.json")
import base64  # noqa: E402
row = {"id": 1, "seqno": 2, "session_id": room["blind15_id"], "posted": 1700000000.123,
       "data": base64.b64encode(bytes.fromhex(room["padded_hex"])).decode(),
       "signature": base64.b64encode(bytes(64)).decode()}
add("community", b"\x00" + json.dumps([row, {"id": 3, "seqno": 4, "data": None, "deleted": True},
                                       {"id": 1, "seqno": 5, "reactions": {}}]).encode())
add("community", b"\x02" + json.dumps([{"code": 200, "headers": {}, "body": {"blind": True}}]).encode())

# Attachments: blobs for the decryptors, plaintexts for the round trips, URLs.
for b in hexes("attachments-legacy-aes-cbc.json", r"encrypted_blob_hex$"):
    add("attachment", b"\x03\x10" + b)
for p in hexes("attachments-legacy-aes-cbc.json", r"plaintext_hex$"):
    add("attachment", b"\x04\x05" + p)
    add("attachment", b"\x0c\x05" + p)
for url in ["http://filev2.getsession.org/file/12345",
            "https://file.example.org/file/abc#d=xyz&p=0123456789abcdef0123456789abcdef01234567"
            "89abcdef0123456789abcdef"]:
    add("attachment", b"\x01\x00" + url.encode())

# IRC: no vectors; a few lines of each shape.
for line in [b"@time=2023-11-14T22:13:20.123Z;msgid=abc :nick!user@host PRIVMSG #chan :hello\r\n",
             b"CAP REQ :server-time message-tags sasl\r\n", b"AUTHENTICATE PLAIN\r\n",
             b"NICK alice\r\nUSER alice 0 * :Alice\r\nPASS :tok\r\n"]:
    add("irc_line", line)
for arg in ["server-time -message-tags sasl", "AGF1dGhjAHBhc3N3b3Jk", "PRIVMSG"]:
    add("irc_cap_sasl", arg)

# Matrix: request bodies and path/query strings, one per selector of `fuzzing::request`.
AID = "05" + "ab" * 32
for sel, body in [
        (0, {"invite": [f"@{AID}:localhost"], "is_direct": True}),
        (0, {"name": "team", "topic": "t", "invite": [f"@{AID}:localhost", "@bob:localhost"]}),
        (1, {"msgtype": "m.text", "body": "hello"}),
        (1, {"msgtype": "m.image", "body": "cat.png", "url": "mxc://localhost/" + "0f" * 16}),
        (2, {"msgtype": "m.text", "body": "re", "m.relates_to": {"m.in_reply_to": {"event_id": "$12"}}}),
        (3, {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$7", "key": "+1"}}),
        (4, {"user_id": f"@{AID}:localhost", "reason": "bye"}),
        (5, {"users": {f"@{AID}:localhost": 100, "@alice:localhost": 100}}),
        (6, {"name": "room"}), (7, {"topic": "about"}),
        (8, {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
             "password": "token", "initial_device_display_name": "x"}),
        (9, {"typing": True, "timeout": 30000}),
        (10, {"m.fully_read": "$3", "m.read": "$3"}),
        (11, {"displayname": "Alice"}), (12, {"search_term": "ali", "limit": 10}), (13, {"mode": "after_send", "seconds": 3600})]:
    add("matrix_request", bytes([sel]) + json.dumps(body).encode())
for q in ["since=s12_3&timeout=30000&filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A10%7D%7D%7D",
          "since=s1&full_state=true&filter=0"]:
    add("matrix_request", b"\x0e" + q.encode())
for path in [f"!{AID}_alice:localhost", "#http://127.0.0.1:8080/lobby?public_key=" + "ab" * 32 + ":localhost",
             "$42", f"@{AID}:localhost"]:
    add("matrix_request", b"\x0f" + path.encode())

for target, items in sorted(seeds.items()):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for b in items:
        with open(os.path.join(d, hashlib.sha1(b).hexdigest()), "wb") as f:
            f.write(b)
    print(f"{target}: {len(items)} seeds")
