#!/usr/bin/env python3
"""Tests of the Python backend library (python/wsedge_backend) without a wsedge binary:
the codec against the golden vectors, then a Backend in a thread driven by a fake edge core
(a DEALER with routing id "node/0"), publishes seen by a SUB, and CURVE with its ZAP
allow-list.

usage: python3 tests/bridge/python_lib_test.py [VECTORS_DIR] [unittest options and test names]
Exit 0 on success, 1 on a failure, 77 (skip) without pyzmq. Every wait has a timeout; a
watchdog ends the whole run after 30 s.
"""
import faulthandler
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
VECTORS = os.path.join(HERE, "vectors")
EXAMPLES = os.path.join(HERE, "..", "..", "python", "examples")
if len(sys.argv) > 1 and os.path.isdir(sys.argv[1]):  # the rest goes to unittest
    VECTORS = sys.argv.pop(1)

try:
    import zmq
except ImportError:
    print("SKIP: pyzmq is not installed for", sys.executable)
    sys.exit(77)

from wsedge_backend import BY_EDGE_LOST, Backend, ConnId  # noqa: E402
from wsedge_backend import protocol as p  # noqa: E402
from wsedge_backend.keys import load_allow_list, load_keypair, load_public, write_keypair  # noqa: E402

NODE, EPOCH = 0x1A2B3C4D, 0x6560F1A0
CORE_ID = ConnId(NODE, EPOCH, 0, 0, 0)


def cid(slot, gen=1, epoch=EPOCH):
    return ConnId(NODE, epoch, 0, slot, gen)


def read_vector(path):
    frames = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                frames.append(b"" if line == "-" else bytes.fromhex(line))
    return frames


class CodecTest(unittest.TestCase):
    def test_golden_vectors_round_trip(self):
        names = sorted(n for n in os.listdir(VECTORS) if n.endswith(".hex"))
        self.assertGreaterEqual(len(names), 12, f"vectors in {VECTORS}")
        for name in names:
            with self.subTest(vector=name):
                frames = read_vector(os.path.join(VECTORS, name))
                msg = p.decode(frames)
                self.assertEqual(msg.encode(), frames)
                self.assertEqual(p.encode(msg.type, msg.id, msg.meta, msg.payload, msg.flags),
                                 frames)

    def test_vector_contents(self):
        m = p.decode(read_vector(os.path.join(VECTORS, "open.hex")))
        self.assertEqual((m.type, str(m.id)), (p.OPEN, "1a2b3c4d.6560f1a0.3.1f.7"))
        self.assertEqual(m.text("h:origin"), "https://example.com")
        m = p.decode(read_vector(os.path.join(VECTORS, "send_many_ack.hex")))
        self.assertEqual(m.flags, p.FLAG_ACK)
        self.assertEqual([str(i) for i in p.decode_ids(m.meta["ids"])],
                         ["1a2b3c4d.6560f1a0.3.1f.7", "1a2b3c4d.6560f1a0.1.200.ffffffff"])
        self.assertEqual(p.read_u32(m.meta["seq"]), 7)
        m = p.decode(read_vector(os.path.join(VECTORS, "message_binary.hex")))
        self.assertTrue(m.binary)
        self.assertEqual(m.payload, b"\x00\xff\x10")

    def test_auth_vector_contents(self):
        m = p.decode(read_vector(os.path.join(VECTORS, "acl.hex")))
        self.assertEqual((m.type, m.name, m.flags, m.id), (p.ACL, "ACL", p.FLAG_ACK, p.ZERO_ID))
        self.assertEqual(m.text("op"), "allow")
        self.assertEqual([p.decode_names(m.meta[k]) for k in ("roles", "resources", "permissions")],
                         [["member"], ["chat:*", "/chat"], ["subscribe", "publish"]])
        self.assertEqual(p.read_u32(m.meta["seq"]), 9)
        m = p.decode(read_vector(os.path.join(VECTORS, "expires.hex")))
        self.assertEqual((m.type, m.name, str(m.id)), (p.EXPIRES, "EXPIRES",
                                                       "1a2b3c4d.6560f1a0.3.1f.7"))
        self.assertEqual(p.read_u64(m.meta["exp"]), 1767225600)
        m = p.decode(read_vector(os.path.join(VECTORS, "client_publish.hex")))
        self.assertEqual((m.type, m.name, m.binary, m.text("channel"), m.payload),
                         (p.CLIENT_PUBLISH, "PUBLISH", False, "chat:lobby", b"hi all"))
        self.assertIn(p.CLIENT_PUBLISH, p.UP_TYPES)
        self.assertTrue({p.ACL, p.EXPIRES} <= p.DOWN_TYPES)
        # a client's publish carries its payload: without the frame it is malformed
        self.assertRaises(p.ProtocolError, p.decode,
                          read_vector(os.path.join(VECTORS, "client_publish.hex"))[:2])

    def test_name_lists(self):
        self.assertEqual(p.encode_names(["a", "bc"]), b"\x01a\x02bc")
        self.assertEqual(p.decode_names(p.encode_names(["é", "x" * 255])), ["é", "x" * 255])
        for bad in ([""], ["x" * 256], ["é" * 128]):  # 256 bytes of UTF-8
            self.assertRaises(ValueError, p.encode_names, bad)
        for cut in (b"\x02a", b"\x00", b"\x01a\x00"):
            self.assertRaises(p.ProtocolError, p.decode_names, cut)

    def test_conn_id(self):
        c = ConnId.parse("1a2b3c4d.6560f1a0.3.1f.7")
        self.assertEqual(c, ConnId(0x1A2B3C4D, 0x6560F1A0, 3, 0x1F, 7))
        self.assertEqual(ConnId.from_bytes(c.to_bytes()), c)
        self.assertEqual(len(c.to_bytes()), 18)
        self.assertRaises(ValueError, ConnId.parse, "1.2.3")
        self.assertRaises(Exception, ConnId.parse, "1.2.10000.4.5")

    def test_refusals(self):
        good = p.encode(p.CLOSE, cid(1), [("code", p.u16(1000))])
        cases = {
            "short header": ([good[0][:23], good[1]], p.E_BAD_FRAME),
            "long header": ([good[0] + b"\0", good[1]], p.E_BAD_FRAME),
            "bad magic": ([b"WF" + good[0][2:], good[1]], p.E_BAD_FRAME),
            "version 2": ([good[0][:2] + b"\x02" + good[0][3:], good[1]], p.E_BAD_VERSION),
            "type 0x7f": ([good[0][:3] + b"\x7f" + good[0][4:], good[1]], p.E_UNKNOWN_TYPE),
            "missing meta": ([good[0]], p.E_BAD_FRAME),
            "extra frame": (good + [b"x"], p.E_BAD_FRAME),
            "missing payload": (p.encode(p.MESSAGE, cid(1))[:2], p.E_BAD_FRAME),
            "meta cut": ([good[0], good[1][:-1]], p.E_BAD_META),
            "meta trailing": ([good[0], good[1] + b"\x01"], p.E_BAD_META),
            "empty key": ([good[0], b"\x00\x00\x00"], p.E_BAD_META),
            "repeated key": ([good[0], good[1] + good[1]], p.E_BAD_META),
        }
        for what, (frames, code) in cases.items():
            with self.subTest(what):
                with self.assertRaises(p.ProtocolError) as cm:
                    p.decode(frames)
                self.assertEqual(cm.exception.code, code)

    def test_snapshot_and_channels(self):
        entries = [(cid(1), ["room:a", "b"]), (cid(2), [])]
        self.assertEqual(p.decode_snapshot(p.encode_snapshot(entries)), entries)
        self.assertRaises(p.ProtocolError, p.decode_snapshot, p.encode_snapshot(entries)[:-1])
        self.assertRaises(ValueError, p.encode_channels, ["a\0b"])


class FakeEdge:
    """A wsedge core as the backend sees it: a DEALER with routing id node/core."""

    def __init__(self, ctx, endpoint, routing_id=b"node/0", curve=None):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTING_ID, routing_id)
        self.sock.setsockopt(zmq.SNDTIMEO, 1000)  # a refused peer never takes a message
        if curve:
            server_public, public, secret = curve
            self.sock.setsockopt(zmq.CURVE_SERVERKEY, server_public)
            self.sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
            self.sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
        self.sock.connect(endpoint)

    def send(self, type_, id_=p.ZERO_ID, meta=(), payload=None, flags=0):
        self.sock.send_multipart(p.encode(type_, id_, meta, payload, flags))

    def send_raw(self, frames):
        self.sock.send_multipart(frames)

    def recv(self, timeout=2.0):
        """The next message, or None after `timeout` seconds."""
        if not self.sock.poll(int(timeout * 1000)):
            return None
        return p.decode(self.sock.recv_multipart())

    def expect(self, type_, timeout=2.0, skip=(p.RECEIVED,)):
        """The next message of `type_`, skipping the types in `skip`; fails on timeout."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            m = self.recv(max(0.0, left)) if left > 0 else None
            if m is None:
                raise AssertionError(f"no {p.TYPE_NAMES[type_]} within {timeout} s")
            if m.type == type_:
                return m
            if m.type not in skip:
                raise AssertionError(f"expected {p.TYPE_NAMES[type_]}, got {m.name} {m.meta}")

    def hello(self, core_id=CORE_ID, versions=b"\x01", timeout=2.0):
        self.send(p.HELLO, core_id, [("versions", versions), ("node", "edge-a"),
                                     ("cores", p.u16(1))])
        return self.expect(p.WELCOME, timeout)

    def close(self):
        self.sock.close(0)


class BackendCase(unittest.TestCase):
    """A Backend running in a thread; its handlers put events into self.events."""

    backend_kwargs = {}

    def setUp(self):
        self.ctx = zmq.Context()
        self.events = queue.Queue()
        self.b = Backend("tcp://127.0.0.1:*", publish="tcp://127.0.0.1:*", name="test",
                         **self.backend_kwargs)
        b, ev = self.b, self.events

        @b.on_open
        def opened(conn):
            ev.put(("open", conn))

        @b.on_message
        def message(conn, data, binary):
            if data == b"boom":
                raise RuntimeError("a handler's bug")
            ev.put(("message", conn, data, binary))
            if data.startswith(b"echo"):
                b.send(conn, data, binary=binary)

        @b.on_close
        def closed(conn, code, reason, by):
            ev.put(("close", conn, code, reason, by))

        b.on_ack(lambda seq, c: ev.put(("ack", seq, c)))
        b.on_error(lambda seq, code, reason, c: ev.put(("error", seq, code, reason, c)))
        b.on_snapshot(lambda entries: ev.put(("snapshot", entries)))
        b.on_edge_lost(lambda key: ev.put(("edge_lost", key)))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=b.run, args=(self.stop,), daemon=True)
        self.thread.start()
        self.edge = FakeEdge(self.ctx, b.endpoint)

    def tearDown(self):
        self.stop.set()
        self.thread.join(5)
        self.assertFalse(self.thread.is_alive(), "backend thread did not stop")
        self.edge.close()
        self.b.close()
        self.ctx.term()

    def event(self, kind, timeout=2.0):
        end = time.monotonic() + timeout
        while True:
            try:
                e = self.events.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind} event within {timeout} s") from None
            if e[0] == kind:
                return e

    def in_loop(self, fn, *args):
        """Runs fn(*args) in the backend's thread; returns its result."""
        out = queue.Queue()
        self.b.call_soon(lambda: out.put(fn(*args)))
        return out.get(timeout=2)

    def open(self, c, **meta):
        self.edge.send(p.OPEN, c, list(meta.items()) or [("path", "/")])
        return self.event("open")[1]

    def synced_sub(self, *channels):
        """A SUB on the backend's PUB for `channels`, once its filters have reached the PUB
        (ZeroMQ carries them asynchronously): publishes on "sync" until one arrives."""
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        for ch in channels + ("sync",):
            sub.setsockopt(zmq.SUBSCRIBE, ch.encode() + b"\0")
        sub.connect(self.b.publish_endpoint)
        end = time.monotonic() + 3
        while True:
            self.in_loop(self.b.publish, "sync", "s")
            if sub.poll(50):
                break
            self.assertLess(time.monotonic(), end, "SUB never got a publish")
        while sub.poll(100):
            sub.recv_multipart()
        return sub


class SessionTest(BackendCase):
    def test_hello_welcome(self):
        w = self.edge.hello()
        self.assertEqual(w.id, p.ZERO_ID)
        self.assertEqual(p.read_u8(w.meta["version"]), 1)
        self.assertEqual(w.text("backend"), "test")
        self.assertEqual(p.read_u64(w.meta["instance"]), self.b.instance)
        edge = self.b.edges[b"node/0"]
        self.assertEqual((edge.node_name, edge.cores, edge.core_key), ("edge-a", 1,
                                                                      (NODE, EPOCH, 0)))
        # the instance is fixed per Backend object: a second HELLO gets the same
        self.assertEqual(self.edge.hello().meta["instance"], w.meta["instance"])

    def test_hello_without_version_1(self):
        self.edge.send(p.HELLO, CORE_ID, [("versions", b"\x02\x03"), ("node", "x")])
        e = self.edge.expect(p.ERROR)
        self.assertEqual(e.text("code"), p.E_BAD_VERSION)

    def test_open_message_echo_close(self):
        self.edge.hello()
        c = cid(0x1F, 7)
        self.edge.send(p.OPEN, c, [("path", "/chat?room=1"), ("peer", "127.0.0.1:5555"),
                                   ("protocol", "chat"), ("h:origin", "https://example.com"),
                                   ("sub", "alice"), ("channels", p.encode_channels(["a"])),
                                   ("resumed", b"")])
        conn = self.event("open")[1]
        self.assertEqual(conn.id, c)
        self.assertEqual(str(conn.id), "1a2b3c4d.6560f1a0.0.1f.7")
        self.assertEqual((conn.path, conn.peer, conn.protocol, conn.user),
                         ("/chat?room=1", "127.0.0.1:5555", "chat", "alice"))
        self.assertEqual(conn.headers, {"origin": "https://example.com"})
        self.assertEqual(conn.channels, {"a"})
        self.assertTrue(conn.resumed)
        self.assertFalse(conn.failover)
        for payload, flags in ((b"echo \x00\xff", p.FLAG_BINARY), (b"echo text", 0)):
            self.edge.send(p.MESSAGE, c, (), payload, flags)
            _, mconn, data, binary = self.event("message")
            self.assertIs(mconn, conn)
            self.assertEqual((data, binary), (payload, bool(flags)))
            s = self.edge.expect(p.SEND)
            self.assertEqual((s.id, s.flags, s.payload, s.meta), (c, flags, payload, {}))
        self.edge.send(p.CLOSE, c, [("code", p.u16(1001)), ("reason", "bye"), ("by", "client")])
        _, cconn, code, reason, by = self.event("close")
        self.assertEqual((cconn, code, reason, by), (conn, 1001, "bye", "client"))
        self.assertNotIn(c, self.b.connections)

    def test_received_after_20ms_for_few_events(self):
        self.edge.hello()
        t0 = time.monotonic()
        self.open(cid(1))
        for i in range(2):
            self.edge.send(p.MESSAGE, cid(1), (), b"m")
        r = self.edge.expect(p.RECEIVED, skip=())
        elapsed = time.monotonic() - t0
        self.assertEqual(p.read_u64(r.meta["count"]), 3)
        self.assertGreaterEqual(elapsed, 0.015)
        self.assertLess(elapsed, 1.0)
        self.assertIsNone(self.edge.recv(0.1), "nothing more while nothing is uncounted")
        # a handler that raises still took its event: it is counted, the loop goes on
        self.edge.send(p.MESSAGE, cid(1), (), b"boom")
        self.assertEqual(p.read_u64(self.edge.expect(p.RECEIVED, skip=()).meta["count"]), 4)

    def test_unknown_type_and_bad_frames(self):
        self.edge.hello()
        h = p.encode_header(p.CLOSE, 0, cid(1))
        cases = [
            ([h[:3] + b"\x7f" + h[4:], b""], p.E_UNKNOWN_TYPE),
            (p.encode(p.PUBLISH, p.ZERO_ID, [("channel", "x")], b"y"), p.E_UNKNOWN_TYPE),
            (p.encode(p.SEND, cid(1), [], b"y"), p.E_UNKNOWN_TYPE),
            ([b"XX" + h[2:], b""], p.E_BAD_FRAME),
            ([h[:10], b""], p.E_BAD_FRAME),
            ([h[:2] + b"\x09" + h[3:], b""], p.E_BAD_VERSION),
            ([h, b"\x05abc"], p.E_BAD_META),
            ([h, p.encode_meta([("code", b"\x01")])], p.E_BAD_META),  # u16 of 1 byte
            ([h], p.E_BAD_FRAME),
        ]
        for frames, code in cases:
            with self.subTest(code=code, frames=frames):
                self.edge.send_raw(frames)
                e = self.edge.expect(p.ERROR)
                self.assertEqual(e.text("code"), code)
        # ... and it still serves
        self.assertEqual(self.edge.hello().type, p.WELCOME)
        self.assertGreaterEqual(self.b.stats.get(p.E_UNKNOWN_TYPE, 0), 3)

    def test_unknown_type_error_carries_seq(self):
        self.edge.hello()
        frames = p.encode(p.HELLO, CORE_ID, [("seq", p.u32(9))])
        frames[0] = frames[0][:3] + b"\x55" + frames[0][4:]
        self.edge.send_raw(frames)
        e = self.edge.expect(p.ERROR)
        self.assertEqual((e.text("code"), p.read_u32(e.meta["seq"])), (p.E_UNKNOWN_TYPE, 9))

    def test_garbage_never_ends_the_loop(self):
        import random
        rnd = random.Random(10)
        self.edge.hello()
        types = sorted(p.KNOWN_TYPES) + [0x00, 0x7F, 0xFF]
        for _ in range(300):
            h = p.encode_header(rnd.choice(types), rnd.getrandbits(16),
                                ConnId(NODE, EPOCH, 0, rnd.getrandbits(3), 1))
            frames = [h] + [bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(12)))
                            for _ in range(rnd.randrange(4))]
            if rnd.random() < 0.2:
                frames[0] = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(30)))
            self.edge.send_raw(frames)
        end = time.monotonic() + 5
        while self.edge.recv(0.2) is not None:  # drain the answers
            self.assertLess(time.monotonic(), end)
        self.assertEqual(self.edge.hello().type, p.WELCOME)
        self.assertTrue(self.thread.is_alive())
        self.assertEqual(self.b.stats.get("internal_errors", 0), 0)

    def test_send_to_300_ids_splits_in_three(self):
        self.edge.hello()
        ids = [cid(i) for i in range(300)]
        self.assertIsNone(self.in_loop(self.b.send, ids, "fan-out"))
        got = []
        for want in (128, 128, 44):
            s = self.edge.expect(p.SEND)
            self.assertEqual((s.id, s.flags, s.payload), (p.ZERO_ID, 0, b"fan-out"))
            chunk = p.decode_ids(s.meta["ids"])
            self.assertEqual(len(chunk), want)
            got += chunk
        self.assertEqual(got, ids)

    def test_send_groups_ids_by_edge_core(self):
        self.edge.hello()
        other = FakeEdge(self.ctx, self.b.endpoint, b"node-b/1")
        try:
            other.hello(ConnId(NODE + 1, EPOCH, 1, 0, 0))
            mine = [cid(i) for i in range(3)]
            theirs = [ConnId(NODE + 1, EPOCH, 1, i, 1) for i in range(2)]
            mixed = [mine[0], theirs[0], mine[1], theirs[1], mine[2]]
            self.assertEqual(len(self.in_loop(self.b.send, mixed, b"x", False, True)), 2)
            self.assertEqual(p.decode_ids(self.edge.expect(p.SEND).meta["ids"]), mine)
            self.assertEqual(p.decode_ids(other.expect(p.SEND).meta["ids"]), theirs)
        finally:
            other.close()

    def test_ack_and_error_reach_handlers(self):
        self.edge.hello()
        c = cid(5)
        self.open(c)
        seq = self.in_loop(lambda: self.b.send(self.b.conn(c), b"hi", ack=True))
        s = self.edge.expect(p.SEND)
        self.assertEqual(s.flags, p.FLAG_ACK)
        self.assertEqual(p.read_u32(s.meta["seq"]), seq)
        self.edge.send(p.ACK, c, [("seq", p.u32(seq))])
        self.assertEqual(self.event("ack")[1:], (seq, c))
        # subscribe with ack: ERROR gone comes back for an id that has ended
        gone = cid(5, gen=2)
        seq2 = self.in_loop(lambda: self.b.subscribe(gone, "room:a", "b", ack=True))
        self.assertNotEqual(seq2, seq)
        s = self.edge.expect(p.SUBSCRIBE)
        self.assertEqual((s.id, s.flags), (gone, p.FLAG_ACK))
        self.assertEqual(p.decode_channels(s.meta["channels"]), ["room:a", "b"])
        self.edge.send(p.ERROR, gone, [("seq", p.u32(seq2)), ("code", "gone"),
                                       ("reason", "slot moved on")])
        self.assertEqual(self.event("error")[1:], (seq2, "gone", "slot moved on", gone))
        # a multi-id send with ack: one seq per SEND message
        seqs = self.in_loop(lambda: self.b.send([cid(i) for i in range(130)], b"x", ack=True))
        self.assertEqual(len(seqs), 2)
        for want in seqs:
            s = self.edge.expect(p.SEND)
            self.assertEqual(p.read_u32(s.meta["seq"]), want)
        # a connection of an unknown core: on_error gone at once, nothing sent
        stranger = ConnId(7, 7, 7, 7, 7)
        seq3 = self.in_loop(lambda: self.b.close(stranger, 4000, "x", ack=True))
        self.assertEqual(self.event("error")[1:3], (seq3, "gone"))

    def test_close_unsubscribe_commands(self):
        self.edge.hello()
        c = cid(3)
        conn = self.open(c)
        self.in_loop(lambda: self.b.subscribe(conn, "x"))
        self.edge.expect(p.SUBSCRIBE)
        self.in_loop(lambda: self.b.unsubscribe(conn, "x"))
        u = self.edge.expect(p.UNSUBSCRIBE)
        self.assertEqual((u.id, u.flags, p.decode_channels(u.meta["channels"])), (c, 0, ["x"]))
        self.assertEqual(conn.channels, set())
        self.in_loop(lambda: self.b.close(conn, 4001, "kicked"))
        k = self.edge.expect(p.CLOSE_COMMAND)
        self.assertEqual((k.id, p.read_u16(k.meta["code"]), k.text("reason")), (c, 4001, "kicked"))

    def test_snapshot(self):
        self.edge.hello()
        seq = self.in_loop(self.b.request_snapshot)
        q = self.edge.expect(p.SNAPSHOT_REQUEST)
        self.assertEqual(p.read_u32(q.meta["seq"]), seq)
        part1 = [(cid(1), ["room:lobby"]), (cid(2), [])]
        part2 = [(cid(3), ["a", "b"])]
        self.edge.send(p.SNAPSHOT, p.ZERO_ID, [("seq", p.u32(seq))], p.encode_snapshot(part1))
        self.edge.send(p.SNAPSHOT, p.ZERO_ID, [("seq", p.u32(seq)), ("last", b"")],
                       p.encode_snapshot(part2))
        self.assertEqual(self.event("snapshot")[1], part1 + part2)

    def test_publish_seq_and_topic(self):
        sub = self.synced_sub("chan")
        try:
            for text in ("one", "not for a 'chan' subscriber"):
                self.in_loop(self.b.publish, "chanx", text)
            seqs = [self.in_loop(self.b.publish, "chan", t) for t in ("a", "b", "c")]
            self.assertEqual(seqs, [1, 2, 3])
            for want_seq, want in zip((1, 2, 3), (b"a", b"b", b"c")):
                self.assertTrue(sub.poll(2000))
                frames = sub.recv_multipart()
                self.assertEqual(len(frames), 4)
                self.assertEqual(frames[0], b"chan\0")
                m = p.decode(frames[1:])
                self.assertEqual((m.type, m.id, m.flags, m.payload), (p.PUBLISH, p.ZERO_ID, 0, want))
                self.assertEqual(m.text("channel"), "chan")
                self.assertEqual(p.read_u64(m.meta["seq"]), want_seq)
                self.assertEqual(m.text("publisher"), self.b.publisher)
            self.assertFalse(sub.poll(100), "a chanx publish reached a chan subscriber")
            self.in_loop(lambda: self.b.publish("chan", b"\x00", binary=True))
            self.assertTrue(sub.poll(2000))
            self.assertEqual(p.decode(sub.recv_multipart()[1:]).flags, p.FLAG_BINARY)
        finally:
            sub.close(0)

    def test_beat_silence_forgets_connections(self):
        self.edge.hello()
        self.edge.send(p.BEAT, CORE_ID, [("connections", p.u32(2)), ("interval", p.u32(100))])
        a, b = self.open(cid(1)), self.open(cid(2))
        t0 = time.monotonic()
        lost = {self.event("close", 3)[1:] for _ in range(2)}
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        self.assertEqual({x[0] for x in lost}, {a, b})
        self.assertEqual({x[3] for x in lost}, {BY_EDGE_LOST})
        self.assertEqual(self.event("edge_lost")[1], (NODE, EPOCH, 0))
        self.assertEqual(self.b.connections, {})

    def test_beats_keep_connections(self):
        self.edge.hello()
        self.open(cid(1))
        for _ in range(8):
            self.edge.send(p.BEAT, CORE_ID, [("connections", p.u32(1)), ("interval", p.u32(100))])
            time.sleep(0.05)
        self.assertIn(cid(1), self.b.connections)

    def test_new_epoch_forgets_connections(self):
        self.edge.hello()
        old = self.open(cid(1))
        self.edge.hello(ConnId(NODE, EPOCH + 1, 0, 0, 0))
        _, conn, code, reason, by = self.event("close")
        self.assertEqual((conn, by), (old, BY_EDGE_LOST))
        self.assertIn("epoch", reason)


class AuthTest(BackendCase):
    """What docs/AUTH.md adds: the identity in OPEN, a client's PUBLISH, ACL and EXPIRES."""

    def raised(self, fn, *args, **kw):
        """Runs fn in the backend's thread; returns the ValueError it raised, or None."""
        def call():
            try:
                fn(*args, **kw)
            except ValueError as e:
                return e
            return None
        return self.in_loop(call)

    def test_open_identity(self):
        self.edge.hello()
        conn = self.open(cid(1), path="/chat", sub="alice",
                         roles=p.encode_names(["member", "admin"]), exp=p.u64(1767225600),
                         info='{"name": "Alice", "n": [1, 2]}')
        self.assertEqual((conn.user, conn.roles, conn.exp), ("alice", ["member", "admin"],
                                                             1767225600))
        self.assertEqual(conn.info, {"name": "Alice", "n": [1, 2]})
        self.assertEqual(conn.info_text, '{"name": "Alice", "n": [1, 2]}')
        anon = self.open(cid(2), path="/")
        self.assertEqual((anon.user, anon.roles, anon.exp, anon.info, anon.info_text),
                         (None, [], None, None, None))
        # a repeated OPEN (at least once) replaces the identity, keeping .data
        conn.data["k"] = 1
        again = self.open(cid(1), path="/chat", sub="alice", exp=p.u64(0), info="not json")
        self.assertIs(again, conn)
        self.assertEqual((conn.roles, conn.exp, conn.info, conn.info_text, conn.data),
                         ([], None, None, "not json", {"k": 1}))
        self.assertEqual(self.b.stats.get("bad_info"), 1)
        # a roles list that does not parse refuses the OPEN (bad-meta), counted all the same
        self.edge.send(p.OPEN, cid(3), [("path", "/"), ("roles", b"\x05ab")])
        self.assertEqual(self.edge.expect(p.ERROR).text("code"), p.E_BAD_META)
        self.assertNotIn(cid(3), self.b.connections)
        self.assertEqual(p.read_u64(self.edge.expect(p.RECEIVED, skip=()).meta["count"]), 4)

    def test_client_publish_republished_by_default(self):
        self.edge.hello()
        sub = self.synced_sub("chat:lobby")
        try:
            # no OPEN seen for it: the connection is adopted, as for MESSAGE
            self.edge.send(p.CLIENT_PUBLISH, cid(7), [("channel", "chat:lobby")], b"hi all")
            self.edge.send(p.CLIENT_PUBLISH, cid(7), [("channel", "chat:lobby")], b"\x00\x01",
                           p.FLAG_BINARY)
            for want, flags in ((b"hi all", 0), (b"\x00\x01", p.FLAG_BINARY)):
                self.assertTrue(sub.poll(2000), "the client's publish was not republished")
                frames = sub.recv_multipart()
                self.assertEqual(frames[0], b"chat:lobby\0")
                m = p.decode(frames[1:])
                self.assertEqual((m.type, m.flags, m.payload, m.text("channel")),
                                 (p.PUBLISH, flags, want, "chat:lobby"))
                self.assertEqual(m.text("publisher"), self.b.publisher)
        finally:
            sub.close(0)
        self.assertIn(cid(7), self.b.connections)
        # counted like OPEN/MESSAGE/CLOSE, or the edge would resend them for ever
        self.assertEqual(p.read_u64(self.edge.expect(p.RECEIVED, skip=()).meta["count"]), 2)

    def test_client_publish_handler(self):
        self.edge.hello()
        conn = self.open(cid(1), sub="bob")
        self.in_loop(self.b.on_client_publish,
                     lambda c, ch, data, binary: self.events.put(("pub", c, ch, data, binary)))
        self.edge.send(p.CLIENT_PUBLISH, cid(1), [("channel", "user:bob")], b"\xff",
                       p.FLAG_BINARY)
        self.assertEqual(self.event("pub")[1:], (conn, "user:bob", b"\xff", True))
        # the handler replaced the default: nothing went out on the PUB for that channel
        self.assertEqual(self.in_loop(self.b.publish, "user:bob", "x"), 1)
        # a PUBLISH without its channel is refused (bad-meta) and still counted
        self.edge.send(p.CLIENT_PUBLISH, cid(1), [], b"x")
        self.assertEqual(self.edge.expect(p.ERROR).text("code"), p.E_BAD_META)
        self.assertEqual(p.read_u64(self.edge.expect(p.RECEIVED, skip=()).meta["count"]), 3)

    def test_acl_goes_to_every_core_that_said_hello(self):
        self.edge.hello()
        other = FakeEdge(self.ctx, self.b.endpoint, b"node-b/1")
        silent = FakeEdge(self.ctx, self.b.endpoint, b"node-c/0")  # connected, no HELLO
        try:
            other.hello(ConnId(NODE + 1, EPOCH, 1, 0, 0))
            silent.send(p.BEAT, ConnId(NODE + 2, EPOCH, 0, 0, 0), [("interval", p.u32(5000))])
            seqs = self.in_loop(lambda: self.b.allow(["member"], ["chat:*", "/chat"],
                                                     ["subscribe", "publish"], ack=True))
            self.assertEqual(len(seqs), 2)
            self.assertEqual(len(set(seqs)), 2, "one seq per core")
            vector = read_vector(os.path.join(VECTORS, "acl.hex"))
            got = {}
            for edge in (self.edge, other):
                m = edge.expect(p.ACL)
                seq = p.read_u32(m.meta["seq"])
                got[edge] = seq
                # the vector's bytes, but for the seq
                frames = p.encode(p.ACL, p.ZERO_ID, dict(m.meta, seq=p.u32(9)), None, m.flags)
                self.assertEqual(frames, vector)
            self.assertEqual(sorted(got.values()), sorted(seqs))
            self.assertIsNone(silent.recv(0.2), "a core that never said HELLO got an ACL")
            # each core answers for itself: ACK, or ERROR bad-acl (and denied reaches on_error)
            self.edge.send(p.ACK, p.ZERO_ID, [("seq", p.u32(got[self.edge]))])
            self.assertEqual(self.event("ack")[1], got[self.edge])
            other.send(p.ERROR, p.ZERO_ID, [("seq", p.u32(got[other])), ("code", "bad-acl"),
                                            ("reason", "cycle")])
            self.assertEqual(self.event("error")[1:4], (got[other], p.E_BAD_ACL, "cycle"))
            other.send(p.ERROR, cid(1), [("seq", p.u32(5)), ("code", "denied")])
            self.assertEqual(self.event("error")[1:3], (5, p.E_DENIED))
            # every wrapper: its op and exactly the meta it takes, to both cores, no ACK asked
            calls = [
                (lambda: self.b.add_user_roles("alice", "admin", "member"), "add-user-roles",
                 {"user": b"alice", "roles": p.encode_names(["admin", "member"])}),
                (lambda: self.b.remove_user_roles("alice", "admin"), "remove-user-roles",
                 {"user": b"alice", "roles": p.encode_names(["admin"])}),
                (lambda: self.b.remove_user("alice"), "remove-user", {"user": b"alice"}),
                (lambda: self.b.deny("guest", "chat:admin", "publish"), "deny",
                 {"roles": b"\x05guest", "resources": b"\x0achat:admin",
                  "permissions": b"\x07publish"}),
                (lambda: self.b.remove_allow(["a"], ["r"], ["*"]), "remove-allow",
                 {"roles": b"\x01a", "resources": b"\x01r", "permissions": b"\x01*"}),
                (lambda: self.b.remove_deny(["a"], ["r"], ["*"]), "remove-deny",
                 {"roles": b"\x01a", "resources": b"\x01r", "permissions": b"\x01*"}),
                (lambda: self.b.add_role_parents("admin", "member"), "add-role-parents",
                 {"role": b"admin", "parents": p.encode_names(["member"])}),
                (lambda: self.b.remove_role_parents("admin", "member", "guest"),
                 "remove-role-parents",
                 {"role": b"admin", "parents": p.encode_names(["member", "guest"])}),
                (lambda: self.b.remove_role("admin"), "remove-role", {"role": b"admin"}),
            ]
            for call, op, meta in calls:
                with self.subTest(op=op):
                    self.assertIsNone(self.in_loop(call))
                    for edge in (self.edge, other):
                        m = edge.expect(p.ACL)
                        self.assertEqual((m.flags, m.meta), (0, dict(op=op.encode(), **meta)))
                        self.assertEqual(next(iter(m.meta)), "op")
        finally:
            other.close()
            silent.close()

    def test_bad_acl_refused_locally(self):
        self.edge.hello()
        cases = [
            (self.b.acl, ("grant",), {"roles": ["a"]}),  # not an op
            (self.b.acl, ("allow",), {"roles": ["a"], "resources": ["r"]}),  # no permissions
            (self.b.acl, ("remove-user",), {"user": "alice", "roles": ["a"]}),  # roles extra
            (self.b.acl, ("remove-user",), {"user": ""}),
            (self.b.acl, ("remove-role",), {"role": "r" * 256}),
            (self.b.allow, (["a"], ["x" * 256], ["*"]), {}),
            (self.b.add_user_roles, ("alice",), {}),  # no roles
            (self.b.add_role_parents, ("admin", ""), {}),
        ]
        for fn, args, kw in cases:
            with self.subTest(fn=fn.__name__, args=args, kw=kw):
                self.assertIsInstance(self.raised(fn, *args, **kw), ValueError)
        self.assertIsNone(self.edge.recv(0.2), "a refused change reached a core")

    def test_expires_goes_to_the_connections_core(self):
        self.edge.hello()
        other = FakeEdge(self.ctx, self.b.endpoint, b"node-b/1")
        try:
            other.hello(ConnId(NODE + 1, EPOCH, 1, 0, 0))
            theirs = ConnId(NODE + 1, EPOCH, 1, 4, 1)
            other.send(p.OPEN, theirs, [("path", "/"), ("sub", "carol"), ("exp", p.u64(100))])
            conn = self.event("open")[1]
            seq = self.in_loop(lambda: self.b.expires(conn, 1767225600, ack=True))
            m = other.expect(p.EXPIRES)
            self.assertEqual((m.id, m.flags, p.read_u64(m.meta["exp"]), p.read_u32(m.meta["seq"])),
                             (theirs, p.FLAG_ACK, 1767225600, seq))
            self.assertEqual(conn.exp, 1767225600)
            self.in_loop(self.b.expires, str(theirs), 0)  # never
            m = other.expect(p.EXPIRES)
            self.assertEqual((m.flags, m.meta), (0, {"exp": p.u64(0)}))
            self.assertIsNone(conn.exp)
            self.assertIsNone(self.edge.recv(0.1), "EXPIRES went to another core")
            # the vector's bytes, for the vector's connection
            self.assertEqual(p.encode(p.EXPIRES, ConnId(NODE, EPOCH, 3, 0x1F, 7),
                                      [("exp", p.u64(1767225600))]),
                             read_vector(os.path.join(VECTORS, "expires.hex")))
            stranger = ConnId(7, 7, 7, 7, 7)
            seq = self.in_loop(lambda: self.b.expires(stranger, 1, ack=True))
            self.assertEqual(self.event("error")[1:3], (seq, p.E_GONE))
            self.assertIsInstance(self.raised(self.b.expires, conn, -1), ValueError)
            self.assertIsInstance(self.raised(self.b.expires, conn, 1 << 64), ValueError)
        finally:
            other.close()


class Received64Test(BackendCase):
    backend_kwargs = {"received_delay": 30.0}

    def test_received_every_64_events(self):
        self.edge.hello()
        self.edge.send(p.OPEN, cid(1), [("path", "/")])
        for _ in range(63 + 64):
            self.edge.send(p.MESSAGE, cid(1), (), b"m")
        for want in (64, 128):
            r = self.edge.expect(p.RECEIVED, skip=())
            self.assertEqual(p.read_u64(r.meta["count"]), want)
        self.edge.send(p.MESSAGE, cid(1), (), b"m")
        self.assertIsNone(self.edge.recv(0.2), "RECEIVED before 64 events or the delay")


class CurveTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        d = self.dir.name
        for name in ("server", "good", "bad"):
            write_keypair(name, d)
        self.server_pub = load_public(os.path.join(d, "server.pub"))
        self.b = Backend("tcp://127.0.0.1:*", name="curve",
                         curve_secret_file=os.path.join(d, "server.key"),
                         curve_allow_file=os.path.join(d, "good.pub"))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.b.run, args=(self.stop,), daemon=True)
        self.thread.start()
        self.ctx = zmq.Context()

    def tearDown(self):
        self.stop.set()
        self.thread.join(5)
        self.b.close()
        self.ctx.term()
        self.dir.cleanup()

    def edge(self, name, routing_id):
        public, secret = load_keypair(os.path.join(self.dir.name, name + ".key"))
        return FakeEdge(self.ctx, self.b.endpoint, routing_id, (self.server_pub, public, secret))

    def test_key_file_format(self):
        with open(os.path.join(self.dir.name, "good.key")) as f:
            lines = [x for x in f.read().splitlines() if not x.startswith("#")]
        self.assertEqual([x.split(":")[0] for x in lines], ["public", "secret"])
        self.assertEqual(os.stat(os.path.join(self.dir.name, "good.key")).st_mode & 0o777, 0o600)
        public, secret = load_keypair(os.path.join(self.dir.name, "good.key"))
        self.assertEqual(zmq.curve_public(secret), public)
        self.assertEqual(load_public(os.path.join(self.dir.name, "good.pub")), public)
        allow = os.path.join(self.dir.name, "allow")
        other = zmq.curve_keypair()[0]
        with open(allow, "w") as f:  # concatenated .pub files, a bare key, comments
            with open(os.path.join(self.dir.name, "good.pub")) as pub:
                f.write(pub.read())
            f.write(f"\n# a comment: {other.decode()}\n{other.decode()}\n")
        self.assertEqual(load_allow_list(allow), [public, other])
        with open(allow, "a") as f:
            f.write(f"secret: {secret.decode()}\n")
        self.assertRaises(ValueError, load_allow_list, allow)

    def test_allowed_key_gets_welcome_unlisted_gets_nothing(self):
        good = self.edge("good", b"node/0")
        bad = self.edge("bad", b"node/1")
        try:
            self.assertEqual(good.hello().text("backend"), "curve")
            try:  # the DEALER has no peer to queue for: the send times out, or no answer
                bad.send(p.HELLO, ConnId(NODE, EPOCH, 1, 0, 0), [("versions", b"\x01")])
            except zmq.Again:
                pass
            self.assertIsNone(bad.recv(1.0), "an unlisted key got an answer")
            self.assertGreaterEqual(self.b._zap.refused, 1)
            self.assertEqual(self.b._zap.accepted, 1)
        finally:
            good.close()
            bad.close()

    def test_without_zap_handler_clients_are_refused(self):
        self.b._zap.stop()
        good = self.edge("good", b"node/2")
        try:
            try:
                good.send(p.HELLO, ConnId(NODE, EPOCH, 2, 0, 0), [("versions", b"\x01")])
            except zmq.Again:
                pass
            self.assertIsNone(good.recv(1.0), "admitted without a ZAP handler")
        finally:
            good.close()


class ExamplesTest(unittest.TestCase):
    def setUp(self):
        self.ctx = zmq.Context()

    def tearDown(self):
        self.ctx.term()

    def test_echo_example_runs(self):
        with socket.socket() as s:  # a free port for the child
            s.bind(("127.0.0.1", 0))
            endpoint = "tcp://127.0.0.1:%d" % s.getsockname()[1]
        child = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, "echo.py"), endpoint],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        edge = FakeEdge(self.ctx, endpoint)
        try:
            edge.sock.setsockopt(zmq.SNDTIMEO, 5000)  # the child may still be starting
            self.assertEqual(edge.hello(timeout=5).text("backend"), "echo")
            edge.send(p.OPEN, cid(1), [("path", "/")])
            edge.send(p.MESSAGE, cid(1), (), b"\x01\x02", p.FLAG_BINARY)
            s = edge.expect(p.SEND)
            self.assertEqual((s.id, s.flags, s.payload), (cid(1), p.FLAG_BINARY, b"\x01\x02"))
        finally:
            edge.close()
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(2)
            child.stderr.close()
        self.assertEqual(child.returncode, 0)

    def test_chat_example_rooms(self):
        sys.path.insert(0, EXAMPLES)
        try:
            import chat
        finally:
            sys.path.remove(EXAMPLES)
        b = chat.make_backend("tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
        stop = threading.Event()
        thread = threading.Thread(target=b.run, args=(stop,), daemon=True)
        thread.start()
        edge = FakeEdge(self.ctx, b.endpoint)
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        for topic in (b"room:lobby\0", b"room:x\0"):
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        sub.connect(b.publish_endpoint)

        def published(topic):
            while True:
                self.assertTrue(sub.poll(2000), f"no publish on {topic}")
                frames = sub.recv_multipart()
                if frames[0] == topic:
                    return json.loads(p.decode(frames[1:]).payload)

        try:
            edge.hello()
            end = time.monotonic() + 3  # the SUB's filters reach the PUB asynchronously
            while not sub.poll(50):
                b.call_soon(b.publish, "room:x", "{}")
                self.assertLess(time.monotonic(), end, "SUB never got a publish")
            while sub.poll(100):
                sub.recv_multipart()
            edge.send(p.OPEN, cid(1), [("path", "/chat")])
            s = edge.expect(p.SUBSCRIBE)
            self.assertEqual((s.id, p.decode_channels(s.meta["channels"])), (cid(1), ["room:lobby"]))
            self.assertEqual(published(b"room:lobby\0"),
                             {"type": "system", "room": "lobby", "text": "guest-1 joined"})
            edge.send(p.MESSAGE, cid(1), (), b"/nick ann")
            self.assertEqual(published(b"room:lobby\0")["text"], "guest-1 is now ann")
            edge.send(p.MESSAGE, cid(1), (), b"hello all")
            self.assertEqual(published(b"room:lobby\0"), {"type": "message", "room": "lobby",
                                                            "from": "ann", "text": "hello all"})
            edge.send(p.MESSAGE, cid(1), (), b"/join x")
            u = edge.expect(p.UNSUBSCRIBE)
            self.assertEqual(p.decode_channels(u.meta["channels"]), ["room:lobby"])
            self.assertEqual(p.decode_channels(edge.expect(p.SUBSCRIBE).meta["channels"]),
                             ["room:x"])
            self.assertEqual(published(b"room:lobby\0")["text"], "ann left")
            self.assertEqual(published(b"room:x\0")["text"], "ann joined")
            edge.send(p.MESSAGE, cid(1), (), b"/join bad/name")
            self.assertEqual(json.loads(edge.expect(p.SEND).payload)["text"], "bad name")
            edge.send(p.OPEN, cid(2), [("path", "/chat"), ("sub", "bob")])  # nick: the user
            edge.expect(p.SUBSCRIBE)
            self.assertEqual(published(b"room:lobby\0")["text"], "bob joined")
        finally:
            stop.set()
            thread.join(5)
            sub.close(0)
            edge.close()
            b.close()


if __name__ == "__main__":
    # The library logs refusals as warnings; the tests provoke them. WSEDGE_TEST_LOG=DEBUG shows them.
    logging.basicConfig(level=os.environ.get("WSEDGE_TEST_LOG", "CRITICAL"),
                        format="%(relativeCreated)6d %(threadName)s %(name)s %(levelname)s %(message)s")
    faulthandler.dump_traceback_later(30, exit=True)
    unittest.main(verbosity=2)
