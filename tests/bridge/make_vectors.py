"""Writes the bridge protocol's golden vectors (docs/BRIDGE-PROTOCOL.md, version 1) from an
encoder written here straight from the specification, independently of the C++ codec: each
vector is one multipart message, frame by frame, in hex. tests/unit/bridge_protocol_test.cpp
builds the same messages with the codec and compares bytes; the Python library will too.

usage: make_vectors.py   (rewrites tests/bridge/vectors/*.hex)
"""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors")
ID = (0x1A2B3C4D, 0x6560F1A0, 3, 0x1F, 7)  # node, epoch, core, slot, gen
ID2 = (0x1A2B3C4D, 0x6560F1A0, 1, 0x200, 0xFFFFFFFF)


def conn_id(node, epoch, core, slot, gen):
    return struct.pack("!IIHII", node, epoch, core, slot, gen)


def header(type_, flags=0, cid=(0, 0, 0, 0, 0)):
    return b"WE" + struct.pack("!BBH", 1, type_, flags) + conn_id(*cid)


def meta(*entries):
    out = b""
    for key, value in entries:
        value = value.encode() if isinstance(value, str) else value
        out += struct.pack("!B", len(key)) + key.encode() + struct.pack("!H", len(value)) + value
    return out


def names(*items):
    """A name list value: each name as u8 length + name."""
    return b"".join(struct.pack("!B", len(n.encode())) + n.encode() for n in items)


VECTORS = {
    "hello": ("HELLO from core 3 of node 1a2b3c4d, epoch 6560f1a0",
              [header(0x01, 0, (ID[0], ID[1], ID[2], 0, 0)),
               meta(("versions", b"\x01"), ("node", "edge-a"), ("cores", struct.pack("!H", 2)))]),
    "open": ("OPEN of 1a2b3c4d.6560f1a0.3.1f.7: path, peer, subprotocol, one forwarded header",
             [header(0x10, 0, ID),
              meta(("path", "/chat?room=1"), ("peer", "127.0.0.1:5555"), ("protocol", "chat"),
                   ("h:origin", "https://example.com"))]),
    "message_binary": ("MESSAGE up, binary, 3 bytes",
                       [header(0x11, 0x0001, ID), b"", b"\x00\xff\x10"]),
    "close": ("CLOSE up: 1001 by the client",
              [header(0x12, 0, ID), meta(("code", struct.pack("!H", 1001)), ("reason", "bye"), ("by", "client"))]),
    "send_many_ack": ("SEND text to two connections, acknowledgement asked with seq 7",
                      [header(0x82, 0x8000),
                       meta(("ids", conn_id(*ID) + conn_id(*ID2)), ("seq", struct.pack("!I", 7))),
                       b"hello"]),
    "error_gone": ("ERROR gone for seq 7, naming the connection that has ended",
                   [header(0x21, 0, ID2), meta(("seq", struct.pack("!I", 7)), ("code", "gone"))]),
    "welcome": ("WELCOME: version 1, backend chat, instance 0x0102030405060708",
                [header(0x81), meta(("version", b"\x01"), ("backend", "chat"),
                                    ("instance", struct.pack("!Q", 0x0102030405060708)))]),
    "received": ("RECEIVED: the backend has taken 64 events since its WELCOME",
                 [header(0x88), meta(("count", struct.pack("!Q", 64)))]),
    "publish": ("PUBLISH to channel room1, sequence 42",
                [header(0x86), meta(("channel", "room1"), ("seq", struct.pack("!Q", 42))), b"{\"t\":1}"]),
    "client_publish": ("PUBLISH up: the client of 1a2b3c4d.6560f1a0.3.1f.7 publishes text on "
                       "chat:lobby",
                       [header(0x14, 0, ID), meta(("channel", "chat:lobby")), b"hi all"]),
    "acl": ("ACL allow: roles member, resources chat:* and /chat, permissions subscribe and "
            "publish; acknowledgement asked with seq 9",
            [header(0x89, 0x8000),
             meta(("op", "allow"), ("roles", names("member")),
                  ("resources", names("chat:*", "/chat")),
                  ("permissions", names("subscribe", "publish")), ("seq", struct.pack("!I", 9)))]),
    "expires": ("EXPIRES: 1a2b3c4d.6560f1a0.3.1f.7 now expires at 1767225600 (2026-01-01)",
                [header(0x8A, 0, ID), meta(("exp", struct.pack("!Q", 1767225600)))]),
}


def main():
    os.makedirs(HERE, exist_ok=True)
    for name, (what, frames) in VECTORS.items():
        with open(os.path.join(HERE, name + ".hex"), "w") as f:
            f.write(f"# {what}\n")
            for fr in frames:
                f.write((fr.hex() if fr else "-") + "\n")


if __name__ == "__main__":
    main()
