#!/usr/bin/python3
"""End-to-end tests of the wsedge bridge (docs/BRIDGE-PROTOCOL.md): the real wsedge binary with
--cores 2, real WebSocket clients (websockets' asyncio client) and real pyzmq backends (the
wsedge_backend library in threads or subprocesses), all on 127.0.0.1 with ports picked free.

usage: bridge_test.py WSEDGE_BINARY [unittest options]     exit 0 on success, 1 on failure

Every wait is bounded; nothing asserts speed. WSEDGE_TEST_LOG=DEBUG shows the library's log.
"""
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))

import websockets  # noqa: E402
import zmq  # noqa: E402

from wsedge_backend import Backend  # noqa: E402
from wsedge_backend import protocol as p  # noqa: E402
from wsedge_backend.keys import write_keypair  # noqa: E402
from log_lines import sum_counters  # noqa: E402
from wsedge_server import host_port, start_server  # noqa: E402

BINARY = None
CORES = ("--cores", "2")
WAIT = 10.0  # the bound of every wait for something that should happen

logging.basicConfig(level=os.environ.get("WSEDGE_TEST_LOG", "CRITICAL"))


# ---- helpers --------------------------------------------------------------------------------

def counters(log, names=r"bridge_\w+"):
    """Sums the per-core counters of wsedge's exit log ("bridge_stopped" lines) whose names
    match the pattern `names`."""
    return sum_counters(log, names, "bridge_stopped")


async def until(pred, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.01)


def wait_sync(pred, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BackendThread:
    """A wsedge_backend.Backend running in its own thread, recording what it hears.

    events: list of tuples, appended in the loop's thread: ("open", conn), ("message", conn,
    data, binary), ("close", conn, code, reason, by), ("ack", seq, id), ("error", seq, code,
    reason, id). Commands go through call(), which runs them in the loop's thread."""

    def __init__(self, endpoint="tcp://127.0.0.1:*", publish=None, name="test", echo=False,
                 **kw):
        self.b = Backend(endpoint, publish, name=name, **kw)
        self.endpoint = self.b.endpoint
        self.events = []
        self.lock = threading.Lock()
        self.echo = echo
        self.on_message_hook = None
        b = self.b

        @b.on_open
        def _open(conn):
            self._add(("open", conn, conn.failover, conn.resumed))

        @b.on_message
        def _message(conn, data, binary):
            self._add(("message", conn, data, binary))
            if self.echo:
                b.send(conn, data, binary=binary)
            if self.on_message_hook:
                self.on_message_hook(conn, data, binary)

        @b.on_close
        def _close(conn, code, reason, by):
            self._add(("close", conn, code, reason, by))

        @b.on_ack
        def _ack(seq, cid):
            self._add(("ack", seq, cid))

        @b.on_error
        def _error(seq, code, reason, cid):
            self._add(("error", seq, code, reason, cid))

        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=b.run, args=(self.stop_event,), daemon=True)
        self.thread.start()

    def _add(self, e):
        with self.lock:
            self.events.append(e)

    def snapshot(self, kind=None):
        with self.lock:
            return [e for e in self.events if kind is None or e[0] == kind]

    def welcomed(self):
        return sum(1 for e in list(self.b.edges.values()) if e.welcomed)

    def call(self, fn, *args, timeout=WAIT):
        """Runs fn(*args) in the loop's thread and returns its result."""
        done = threading.Event()
        box = {}

        def run():
            try:
                box["v"] = fn(*args)
            except BaseException as e:  # noqa: BLE001
                box["e"] = e
            done.set()

        self.b.call_soon(run)
        if not done.wait(timeout):
            raise AssertionError("backend loop did not run a call")
        if "e" in box:
            raise box["e"]
        return box.get("v")

    async def acall(self, fn, *args):
        return await asyncio.to_thread(self.call, fn, *args)

    def conn_by_path(self, path):
        for e in self.snapshot("open"):
            if e[1].path == path:
                return e[1]
        return None

    def stop(self):
        if self.thread.is_alive():
            self.stop_event.set()
            self.thread.join(WAIT)
        self.b.shutdown()


@contextlib.contextmanager
def backends(*bts):
    try:
        yield bts
    finally:
        for bt in bts:
            bt.stop()


async def connect(url, path, **kw):
    kw.setdefault("open_timeout", WAIT)
    kw.setdefault("close_timeout", 2)
    kw.setdefault("compression", None)
    return await websockets.connect(url.rstrip("/") + path, **kw)


async def recv(ws, timeout=WAIT):
    return await asyncio.wait_for(ws.recv(), timeout)


async def closed_with(ws, timeout=WAIT):
    """Reads until the connection closes; returns (code, reason, messages read before)."""
    got = []
    try:
        while True:
            got.append(await asyncio.wait_for(ws.recv(), timeout))
    except websockets.ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason, got


async def open_clients(url, bt, n, prefix):
    """n clients at /PREFIX?c=I; returns [(ws, Conn)] once the backend has every OPEN."""
    socks = [await connect(url, f"/{prefix}?c={i}") for i in range(n)]
    await until(lambda: all(bt.conn_by_path(f"/{prefix}?c={i}") for i in range(n)),
                what=f"{n} OPENs")
    return [(ws, bt.conn_by_path(f"/{prefix}?c={i}")) for i, ws in enumerate(socks)]


class RawClient:
    """A WebSocket client on a plain socket with a small receive buffer, for clients that stop
    reading (the asyncio client reads into its own queue behind the test's back)."""

    def __init__(self, url, path, rcvbuf=4096):
        host, port = host_port(url)
        self.path = path
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(WAIT)
        self.sock.connect((host, port))
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("connection closed during the upgrade")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"upgrade refused: {head!r}")

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def frame(self):
        """(opcode, payload) of the next frame (servers do not fragment these)."""
        self._need(2)
        op, ln = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        at = 2
        if ln == 126:
            self._need(4)
            ln, at = int.from_bytes(self.buf[2:4], "big"), 4
        elif ln == 127:
            self._need(10)
            ln, at = int.from_bytes(self.buf[2:10], "big"), 10
        self._need(at + ln)
        payload, self.buf = self.buf[at:at + ln], self.buf[at + ln:]
        return op, payload

    def send_close(self, code=1000):
        """A masked Close frame (mask 0: the payload goes as is)."""
        self.sock.sendall(bytes([0x88, 0x80 | 2, 0, 0, 0, 0]) + code.to_bytes(2, "big"))

    def close(self):
        self.sock.close()


def raw_http(url, path):
    """Sends an upgrade request; returns the response head (status line and headers)."""
    host, port = host_port(url)
    with socket.create_connection((host, port), timeout=WAIT) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def assert_outage_close(test, code, reason):
    """A client closed after a backend outage (§8): 1013 "try again later"."""
    test.assertEqual((code, reason), (1013, "backend unavailable"))


@contextlib.contextmanager
def bridge(*flags, **kw):
    """wsedge --app bridge --cores 2 FLAGS; yields (url, proc); proc.log has the exit log."""
    proc = None
    try:
        with start_server(BINARY, *CORES, *flags, app="bridge", **kw) as (url, proc):
            yield url, proc
    finally:
        if proc is not None:
            proc.stdout.close()
            proc.stderr.close()


PROC_BACKEND = r"""
import sys
sys.path.insert(0, sys.argv[2])
from wsedge_backend import Backend
b = Backend(sys.argv[1], name="proc")
def say(*a):
    print(*a, flush=True)
@b.on_hello
def hello(edge):
    say("hello", edge.routing_id.decode())
@b.on_open
def opened(conn):
    say("open", conn.path, int(conn.resumed), int(conn.failover))
@b.on_message
def message(conn, data, binary):
    say("msg", conn.path, data.decode())
    b.send(conn, b"echo " + data)
    say("sent", conn.path, "echo " + data.decode())
@b.on_close
def closed(conn, code, reason, by):
    say("close", conn.path, code, by)
say("ready", b.endpoint)
b.run()
"""


class ProcBackend:
    """A backend in its own process (so it can be SIGKILLed): echoes every message and prints
    each event on stdout, which a thread collects."""

    def __init__(self, endpoint):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PROC_BACKEND, endpoint, os.path.join(HERE, "..", "..", "python")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n").split(" "))

    def wait_ready(self):
        wait_sync(lambda: self.count("ready"), what="backend process ready")

    def _of(self, kind):
        with self.lock:
            return [x for x in self.lines if x[0] == kind]

    def count(self, kind):
        return len(self._of(kind))

    def msgs(self, path):
        # A line cut short by SIGKILL mid-print may hold less: it counts for nothing.
        return [x[2] for x in self._of("msg") if len(x) > 2 and x[1] == path]

    def sent(self, path):
        return [" ".join(x[2:]) for x in self._of("sent") if len(x) > 2 and x[1] == path]

    def events_of(self, path):
        with self.lock:
            return [(x[0], *x[2:]) for x in self.lines if len(x) > 1 and x[1] == path]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(WAIT)
        self.reader.join(WAIT)
        self.proc.stdout.close()


# ---- the tests ------------------------------------------------------------------------------

class BridgeTest(unittest.TestCase):
    maxDiff = 4000

    def run_async(self, coro, timeout=60):
        asyncio.run(asyncio.wait_for(coro, timeout))

    # 1 ------------------------------------------------------------------------------------
    def test_01_open_message_close(self):
        t0 = int(time.time())
        with backends(BackendThread()) as (bt,):
            with bridge("--backend", bt.endpoint) as (url, proc):
                self.run_async(self._open_message_close(url, bt, t0))
        c = counters(proc.log)
        self.assertGreaterEqual(c["bridge_events_up_total"], 4 + 2 + 4)
        self.assertEqual(c["bridge_bad_messages_total"], 0)

    async def _open_message_close(self, url, bt, t0):
        await until(lambda: bt.welcomed() == 2, what="both cores welcomed")
        clients = []
        for i in range(4):
            ws = await connect(url, f"/chat/room?c={i}&x=%20y", origin="http://origin.test",
                               user_agent_header=f"itest-agent/{i}")
            clients.append(ws)
        await until(lambda: len(bt.snapshot("open")) == 4, what="4 OPENs")
        ids = set()
        for i, ws in enumerate(clients):
            conn = bt.conn_by_path(f"/chat/room?c={i}&x=%20y")
            self.assertIsNotNone(conn, f"OPEN for client {i}")
            self.assertEqual(conn.peer, f"127.0.0.1:{ws.local_address[1]}")
            self.assertEqual(conn.headers.get("origin"), "http://origin.test")
            self.assertEqual(conn.headers.get("user-agent"), f"itest-agent/{i}")
            self.assertIn(conn.id.core, (0, 1))
            self.assertLessEqual(abs(conn.id.epoch - t0), 5)
            self.assertRegex(str(conn.id), r"^[0-9a-f]+\.[0-9a-f]+\.[01]\.[0-9a-f]+\.[0-9a-f]+$")
            ids.add(conn.id)
            self.assertFalse(conn.failover or conn.resumed)
        self.assertEqual(len(ids), 4)
        ws0, ws1 = clients[0], clients[1]
        c0, c1 = bt.conn_by_path("/chat/room?c=0&x=%20y"), bt.conn_by_path("/chat/room?c=1&x=%20y")
        await ws0.send("héllo ✓")
        await ws0.send(b"\x00\x01\xff")
        await until(lambda: len(bt.snapshot("message")) == 2, what="2 MESSAGEs")
        msgs = bt.snapshot("message")
        self.assertEqual([(m[1].id, m[2], m[3]) for m in msgs],
                         [(c0.id, "héllo ✓".encode(), False), (c0.id, b"\x00\x01\xff", True)])
        # The client closes: CLOSE by=client with its code and reason.
        await ws0.close(4002, "client-bye")
        await until(lambda: bt.snapshot("close"), what="CLOSE")
        close = bt.snapshot("close")[0]
        self.assertEqual((close[1].id, close[2], close[3], close[4]),
                         (c0.id, 4002, "client-bye", "client"))
        # The backend closes: the client sees its code and reason, on_close says by=backend.
        await bt.acall(bt.b.close, c1, 4001, "bye")
        code, reason, _ = await closed_with(ws1)
        self.assertEqual((code, reason), (4001, "bye"))
        await until(lambda: len(bt.snapshot("close")) == 2, what="second CLOSE")
        close = bt.snapshot("close")[1]
        self.assertEqual((close[1].id, close[2], close[3], close[4]), (c1.id, 4001, "bye", "backend"))
        # The others still work both ways.
        c2 = bt.conn_by_path("/chat/room?c=2&x=%20y")
        await bt.acall(bt.b.send, c2, "down")
        self.assertEqual(await recv(clients[2]), "down")
        await bt.acall(bt.b.send, c2, b"\x01\x02", True)
        self.assertEqual(await recv(clients[2]), b"\x01\x02")
        for ws in clients[2:]:
            await ws.close()
        await until(lambda: len(bt.snapshot("close")) == 4, what="all CLOSEs")

    # 2 ------------------------------------------------------------------------------------
    def test_02_send_one_and_many(self):
        with backends(BackendThread()) as (bt,):
            with bridge("--backend", bt.endpoint) as (url, proc):
                self.run_async(self._send_many(url, bt))
        c = counters(proc.log)
        self.assertGreaterEqual(c["bridge_sends_total"], 200)
        self.assertGreaterEqual(c["bridge_gone_total"], 1)

    async def _send_many(self, url, bt):
        await until(lambda: bt.welcomed() == 2, what="both cores welcomed")
        clients = await open_clients(url, bt, 200, "many")
        self.assertEqual({conn.id.core for _, conn in clients}, {0, 1}, "clients on both cores")
        seqs = await bt.acall(lambda: bt.b.send([c for _, c in clients], "to-all", ack=True))
        # One SEND per core per 128 ids.
        per_core = [sum(1 for _, c in clients if c.id.core == k) for k in (0, 1)]
        self.assertEqual(len(seqs), sum((n + 127) // 128 for n in per_core))
        self.assertEqual(await asyncio.gather(*(recv(ws) for ws, _ in clients)),
                         ["to-all"] * 200)
        await until(lambda: {e[1] for e in bt.snapshot("ack")} >= set(seqs), what="ACKs")
        # Exactly once: a second message is the next thing each client reads.
        await bt.acall(lambda: bt.b.send([c for _, c in clients], b"second", True))
        self.assertEqual(await asyncio.gather(*(recv(ws) for ws, _ in clients)), [b"second"] * 200)
        # ACK for a live one, ERROR gone for a gone one.
        ws_gone, gone = clients[0]
        await ws_gone.close()
        await until(lambda: bt.snapshot("close"), what="CLOSE")
        live = clients[1][1]
        s_live = await bt.acall(lambda: bt.b.send(live, "one", ack=True))
        s_gone = await bt.acall(lambda: bt.b.send(gone, "one", ack=True))
        self.assertEqual(await recv(clients[1][0]), "one")
        await until(lambda: any(e[1] == s_gone for e in bt.snapshot("error")), what="ERROR gone")
        await until(lambda: any(e[1] == s_live for e in bt.snapshot("ack")), what="ACK")
        err = [e for e in bt.snapshot("error") if e[1] == s_gone][0]
        self.assertEqual((err[2], err[4]), ("gone", gone.id))
        self.assertFalse(any(e[1] == s_gone for e in bt.snapshot("ack")), "gone id also ACKed")
        self.assertFalse(any(e[1] == s_live for e in bt.snapshot("error")))
        for ws, _ in clients[1:]:
            await ws.close()

    # 3 ------------------------------------------------------------------------------------
    def test_03_subscribe_publish(self):
        with backends(BackendThread(publish="tcp://127.0.0.1:*")) as (bt,):
            with bridge("--backend", bt.endpoint, "--publish", bt.b.publish_endpoint) as (url, proc):
                self.run_async(self._subscribe_publish(url, bt))
        c = counters(proc.log)
        self.assertGreaterEqual(c["bridge_deliveries_total"], 20 * 50)
        self.assertEqual(c["bridge_publish_gaps_total"], 0)

    async def _subscribe_publish(self, url, bt):
        await until(lambda: bt.welcomed() == 2, what="both cores welcomed")
        clients = await open_clients(url, bt, 20, "sub")
        self.assertEqual({conn.id.core for _, conn in clients}, {0, 1}, "clients on both cores")
        room = await connect(url, "/room")
        await until(lambda: bt.conn_by_path("/room"), what="OPEN")
        room_conn = bt.conn_by_path("/room")
        seqs = []
        for _, conn in clients:
            seqs.append(await bt.acall(lambda c=conn: bt.b.subscribe(c, "news", "ctl", ack=True)))
        seqs.append(await bt.acall(lambda: bt.b.subscribe(room_conn, "newsroom", "ctl", ack=True)))
        await until(lambda: {e[1] for e in bt.snapshot("ack")} >= set(seqs), what="subscribe ACKs")
        everyone = [ws for ws, _ in clients] + [room]
        # Filters reach the PUB asynchronously: probe on ctl until every client has heard one.
        await self._probe(bt, everyone, "ctl")
        for i in range(50):
            await bt.acall(bt.b.publish, "news", f"news {i}")
        await bt.acall(bt.b.publish, "newsroom", "room only")
        got = await asyncio.gather(*(self._read_n(ws, 50) for ws, _ in clients))
        for g in got:
            self.assertEqual(g, [f"news {i}" for i in range(50)])
        # The prefix trap: "newsroom" hears none of "news".
        self.assertEqual(await recv(room), "room only")
        # Unsubscribe half; news stops for them, the ctl marker after it shows nothing came.
        half = clients[:10]
        seqs = [await bt.acall(lambda c=conn: bt.b.unsubscribe(c, "news", ack=True)) for _, conn in half]
        await until(lambda: {e[1] for e in bt.snapshot("ack")} >= set(seqs), what="unsubscribe ACKs")
        await bt.acall(bt.b.publish, "news", "late news")
        await bt.acall(bt.b.publish, "ctl", "marker")
        for ws, _ in half:
            self.assertEqual(await recv(ws), "marker")
        for ws, _ in clients[10:]:
            self.assertEqual(await recv(ws), "late news")
            self.assertEqual(await recv(ws), "marker")
        self.assertEqual(await recv(room), "marker")
        for ws in everyone:
            await ws.close()

    async def _probe(self, bt, socks, channel, publish=None):
        """Publishes probes on a channel until every socket has read one, then drains the
        rest of the probes (a final marker tells where they end)."""
        publish = publish or (lambda ch, data: bt.acall(bt.b.publish, ch, data))
        heard = [False] * len(socks)

        async def listen(i, ws):
            while True:
                m = await ws.recv()
                if m.startswith("probe"):
                    heard[i] = True
                if m == "probe-end":
                    return

        tasks = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(socks)]
        deadline = time.monotonic() + WAIT
        while not all(heard):
            self.assertLess(time.monotonic(), deadline, "subscriptions never reached the publisher")
            await publish(channel, "probe")
            await asyncio.sleep(0.05)
        await publish(channel, "probe-end")
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)

    async def _read_n(self, ws, n):
        return [await recv(ws) for _ in range(n)]


    # 4 ------------------------------------------------------------------------------------
    def test_04_two_backends_sticky_failover(self):
        a, b = BackendThread(name="a"), BackendThread(name="b")
        with backends(a, b):
            with bridge("--backend", f"{a.endpoint},{b.endpoint}") as (url, proc):
                self.run_async(self._failover(url, a, b))
        c = counters(proc.log)
        self.assertGreater(c["bridge_failovers_total"], 0)
        self.assertGreaterEqual(c["bridge_backend_downs_total"], 2)  # both cores lost a

    async def _failover(self, url, a, b):
        await until(lambda: a.welcomed() == 2 and b.welcomed() == 2, what="both backends up")
        n, per = 20, 10
        socks = [await connect(url, f"/f?c={i}") for i in range(n)]
        paths = [f"/f?c={i}" for i in range(n)]

        def msgs(bt, path):
            return [e[2].decode() for e in bt.snapshot("message") if e[1].path == path]

        await until(lambda: all(a.conn_by_path(x) or b.conn_by_path(x) for x in paths), what="OPENs")
        for j in range(per):
            for i, ws in enumerate(socks):
                await ws.send(f"c{i}-{j}")
        want = {x: [f"c{i}-{j}" for j in range(per)] for i, x in enumerate(paths)}
        await until(lambda: all(msgs(a, x) + msgs(b, x) == want[x] or msgs(b, x) + msgs(a, x) == want[x]
                                for x in paths), what="first messages")
        # Sticky: each connection's OPEN and messages at one backend, in order.
        on_a = [x for x in paths if a.conn_by_path(x)]
        on_b = [x for x in paths if b.conn_by_path(x)]
        self.assertEqual(sorted(on_a + on_b), sorted(paths), "each OPEN at exactly one backend")
        self.assertTrue(on_a and on_b, "connections spread over both backends")
        for x in on_a:
            self.assertEqual(msgs(a, x), want[x])
        for x in on_b:
            self.assertEqual(msgs(b, x), want[x])
        # a goes away; clients keep sending.
        await asyncio.to_thread(a.stop)
        for j in range(per, 2 * per):
            for i, ws in enumerate(socks):
                await ws.send(f"c{i}-{j}")
        full = {x: [f"c{i}-{j}" for j in range(2 * per)] for i, x in enumerate(paths)}
        await until(lambda: all(full[x][per:] == msgs(b, x)[-per:] for x in paths),
                    what="every message after the failover at b")
        for x in on_a:
            events = [e for e in b.snapshot() if e[0] in ("open", "message") and e[1].path == x]
            self.assertEqual(events[0][0], "open", f"{x}: OPEN first at b")
            self.assertTrue(events[0][2], f"{x}: OPEN carries failover")
            got = msgs(b, x)
            # At least once: what a had not counted may come again, in order, nothing lost.
            self.assertEqual(sorted(set(msgs(a, x) + got), key=full[x].index), full[x])
            self.assertEqual(got, full[x][full[x].index(got[0]):], f"{x}: in order at b")
        for x in on_b:
            self.assertEqual(msgs(b, x), full[x], f"{x}: sticky at b")
            self.assertEqual([e[2] for e in b.snapshot("open") if e[1].path == x], [False])
        for ws in socks:
            await ws.close()
        await until(lambda: len(b.snapshot("close")) == n, what="CLOSEs at b")

    # 5 ------------------------------------------------------------------------------------
    def test_05_backend_killed_and_restarted(self):
        port = free_port()
        endpoint = f"tcp://127.0.0.1:{port}"
        first = ProcBackend(endpoint)
        second = None
        try:
            first.wait_ready()
            with bridge("--backend", endpoint) as (url, proc):
                second = self.run_async_value(self._crash(url, endpoint, first))
        finally:
            first.kill()
            if second:
                second.kill()
        c = counters(proc.log)
        self.assertGreater(c["bridge_backend_downs_total"], 0)
        self.assertGreaterEqual(c["bridge_backend_ups_total"], 4)

    def run_async_value(self, coro, timeout=90):
        return asyncio.run(asyncio.wait_for(coro, timeout))

    async def _crash(self, url, endpoint, first):
        await until(lambda: first.count("hello") == 2, what="both cores welcomed")
        n, per = 6, 150
        paths = [f"/k?c={i}" for i in range(n)]
        socks = [await connect(url, x) for x in paths]
        await until(lambda: first.count("open") == n, what="OPENs")
        received = {x: [] for x in paths}
        state = {"second": None}

        async def sender(i, ws):
            for j in range(per):
                await ws.send(f"c{i}-{j}")
                await asyncio.sleep(0.002)

        async def reader(x, ws):
            while True:
                received[x].append(await ws.recv())

        readers = [asyncio.create_task(reader(x, ws)) for x, ws in zip(paths, socks)]
        senders = [asyncio.create_task(sender(i, ws)) for i, ws in enumerate(socks)]
        # Kill it mid-stream and start another on the same port.
        await until(lambda: first.count("msg") >= 200, timeout=30, what="messages before the crash")
        first.kill()
        second = state["second"] = ProcBackend(endpoint)
        try:
            await asyncio.to_thread(second.wait_ready)
            await asyncio.wait_for(asyncio.gather(*senders), 30)
            want = {x: [f"c{i}-{j}" for j in range(per)] for i, x in enumerate(paths)}
            # Every message reaches a backend (at least once).
            await until(lambda: all(set(first.msgs(x)) | set(second.msgs(x)) == set(want[x])
                                    for x in paths), timeout=30, what="every message at a backend")
            for x in paths:
                one, two = first.msgs(x), second.msgs(x)
                self.assertEqual(one, want[x][:len(one)], f"{x}: in order at the first")
                self.assertEqual(two, want[x][want[x].index(two[0]):] if two else [],
                                 f"{x}: in order at the second, from where the first stopped")
                # Duplicates only around the crash: what the first had not counted.
                dups = set(one) & set(two)
                if os.environ.get("WSEDGE_TEST_DEBUG"):
                    print(x, len(one), len(two), len(dups), second.events_of(x)[:2], file=sys.stderr)
                self.assertLessEqual(len(dups), 4096)
                if dups:
                    self.assertEqual(sorted(dups, key=want[x].index), one[len(one) - len(dups):])
                # The restarted backend heard of the connection before its messages: resumed.
                evs = second.events_of(x)
                self.assertEqual(evs[0][0], "open", f"{x}: OPEN first at the restarted backend")
                self.assertEqual(evs[0][1], "1", f"{x}: OPEN resumed")
            # What backends sent reaches clients: the first's echoes up to the crash, then every
            # one of the second's.
            await until(lambda: all(received[x][-len(second.sent(x)):] == second.sent(x)
                                    for x in paths if second.sent(x)), what="echoes of the second")
            for x in paths:
                two_sent = second.sent(x)
                got = received[x]
                k = len(got) - len(two_sent)
                handled = ["echo " + m for m in first.msgs(x)]  # "sent" is printed after the send
                self.assertEqual(got[:k], handled[:k], f"{x}: echoes of the first, in order")
                self.assertEqual(got[k:], two_sent)
            for t in readers:
                t.cancel()
            for ws in socks:
                await ws.close()
            await until(lambda: second.count("close") == n, what="CLOSEs at the restarted backend")
            return second
        except BaseException:
            second.kill()
            raise


    # 6 ------------------------------------------------------------------------------------
    def test_06_two_nodes_one_broker(self):
        ctx = zmq.Context()
        xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
        for s in (xsub, xpub):
            s.setsockopt(zmq.LINGER, 0)
        xsub.bind("tcp://127.0.0.1:*")
        xpub.bind("tcp://127.0.0.1:*")
        xsub_ep = xsub.getsockopt(zmq.LAST_ENDPOINT).decode()
        xpub_ep = xpub.getsockopt(zmq.LAST_ENDPOINT).decode()

        def proxy():
            try:
                zmq.proxy(xsub, xpub)
            except zmq.ContextTerminated:
                pass
            xsub.close(0)
            xpub.close(0)

        broker = threading.Thread(target=proxy, daemon=True)
        broker.start()
        pub = ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.connect(xsub_ep)
        try:
            with backends(BackendThread(name="na"), BackendThread(name="nb")) as (ba, bb):
                with bridge("--backend", ba.endpoint, "--publish", xpub_ep, "--node-name", "node-a") as (ua, pa), \
                     bridge("--backend", bb.endpoint, "--publish", xpub_ep, "--node-name", "node-b") as (ub, pb):
                    self.run_async(self._broker(ua, ub, ba, bb, pub))
        finally:
            pub.close(0)
            ctx.term()
            broker.join(WAIT)
        for log in (pa.log, pb.log):
            c = counters(log)
            self.assertGreaterEqual(c["bridge_deliveries_total"], 3)
            self.assertEqual(c["bridge_publish_gaps_total"], 0)

    async def _broker(self, ua, ub, ba, bb, pub):
        seq = {}

        async def publish(channel, data):
            seq[channel] = seq.get(channel, 0) + 1
            frames = p.encode(p.PUBLISH, p.ZERO_ID, [("channel", channel), ("seq", p.u64(seq[channel])),
                                                     ("publisher", "itest-broker")], data.encode())
            pub.send_multipart([channel.encode() + b"\0"] + frames)

        await until(lambda: ba.welcomed() == 2 and bb.welcomed() == 2, what="both nodes welcomed")
        # Both nodes' routing ids carry their names.
        self.assertEqual({e.routing_id for e in ba.b.edges.values()}, {b"node-a/0", b"node-a/1"})
        self.assertEqual({e.routing_id for e in bb.b.edges.values()}, {b"node-b/0", b"node-b/1"})
        ca = await open_clients(ua, ba, 3, "na")
        cb = await open_clients(ub, bb, 3, "nb")
        seqs = [await ba.acall(lambda c=c: ba.b.subscribe(c, "feed", "probe", ack=True)) for _, c in ca]
        seqs2 = [await bb.acall(lambda c=c: bb.b.subscribe(c, "feed", "probe", ack=True)) for _, c in cb]
        await until(lambda: {e[1] for e in ba.snapshot("ack")} >= set(seqs)
                    and {e[1] for e in bb.snapshot("ack")} >= set(seqs2), what="ACKs")
        socks = [ws for ws, _ in ca + cb]
        # The feed's filter went upstream with the probe's: probe until all heard one.
        await self._probe(None, socks, "probe", publish=publish)
        await publish("feed", "to both nodes")
        self.assertEqual(await asyncio.gather(*(recv(ws) for ws in socks)), ["to both nodes"] * 6)
        await publish("probe", "end")
        self.assertEqual(await asyncio.gather(*(recv(ws) for ws in socks)), ["end"] * 6, "exactly once")
        for ws in socks:
            await ws.close()

    # 7 ------------------------------------------------------------------------------------
    def test_07_curve(self):
        from wsedge_backend.keys import load_public
        with tempfile.TemporaryDirectory() as tmp:
            bkey, bpub = write_keypair("backend", tmp)
            ekey, epub = write_keypair("edge", tmp)
            ikey, _ = write_keypair("intruder", tmp)
            allowed = load_public(epub)
            allowed = allowed.decode() if isinstance(allowed, bytes) else allowed
            with backends(BackendThread(publish="tcp://127.0.0.1:*", curve_secret_file=bkey,
                                        curve_allow=[allowed], echo=True)) as (bt,):
                with bridge("--backend", bt.endpoint, "--publish", bt.b.publish_endpoint,
                            "--backend-curve-key", ekey, "--backend-curve-server-key", bpub) as (url, proc):
                    self.run_async(self._curve_ok(url, bt))
                self.assertEqual(bt.welcomed(), 2)
                with bridge("--backend", bt.endpoint, "--backend-curve-key", ikey,
                            "--backend-curve-server-key", bpub, "--backend-grace", "300",
                            "--backend-close-spread", "100") as (url, proc):
                    self.run_async(self._curve_refused(url, bt))
                c = counters(proc.log)
                self.assertEqual(c["bridge_backend_ups_total"], 0)
                self.assertEqual(c["bridge_outage_closes_total"], 2)
            # Off this host without CURVE: refused at start-up.
            r = subprocess.run([BINARY, "--plain", "--listen", "127.0.0.1:0", *CORES, "--backend",
                                "tcp://192.0.2.1:7001"], capture_output=True, text=True, timeout=WAIT)
            self.assertEqual(r.returncode, 2)
            self.assertIn("CURVE", r.stderr)
            self.assertIn("192.0.2.1", r.stderr)
            self.assertNotIn("listening on", r.stdout)

    async def _curve_ok(self, url, bt):
        await until(lambda: bt.welcomed() == 2, what="both cores welcomed over CURVE")
        ws = await connect(url, "/curve")
        await ws.send("secret")
        self.assertEqual(await recv(ws), "secret")
        # Publishes come over CURVE too: the backend's PUB admits the edge's key.
        conn = bt.conn_by_path("/curve")
        seq = await bt.acall(lambda: bt.b.subscribe(conn, "sealed", ack=True))
        await until(lambda: seq in {e[1] for e in bt.snapshot("ack")}, what="subscribe ACK")
        await self._probe(bt, [ws], "sealed")
        await ws.close()
        await until(lambda: bt.snapshot("close"), what="CLOSE")

    async def _curve_refused(self, url, bt):
        before = len(bt.snapshot())
        await self._held_then_closed(url, 2)
        self.assertEqual(len(bt.snapshot()), before, "the unlisted edge reached the backend")


    # 8 ------------------------------------------------------------------------------------
    def flood_bytes(self):
        """Enough output to fill a client's kernel buffers and the server's and pass the budget."""
        def top(path):
            with open(path) as f:
                return int(f.read().split()[2])
        return max(16 << 20, 2 * (top("/proc/sys/net/ipv4/tcp_wmem") + 4096))

    def _slow_setup(self, url, bt):
        """A client that does not read (/slow) and a reading one on the same core, both
        subscribed to "flood" and heard by the publisher. Returns (slow, sentinel, published)."""
        slow = RawClient(url, "/slow")
        wait_sync(lambda: bt.conn_by_path("/slow"), what="OPEN")
        core = bt.conn_by_path("/slow").id.core
        sentinel = None
        for i in range(32):
            c = RawClient(url, f"/sentinel?c={i}", rcvbuf=1 << 20)
            wait_sync(lambda: bt.conn_by_path(f"/sentinel?c={i}"), what="OPEN")
            if bt.conn_by_path(f"/sentinel?c={i}").id.core == core:
                sentinel = c
                break
            c.close()
        self.assertIsNotNone(sentinel, "no client landed on the slow one's core")
        seqs = [bt.call(lambda x=x: bt.b.subscribe(bt.conn_by_path(x.path), "flood", ack=True))
                for x in (slow, sentinel)]
        wait_sync(lambda: {e[1] for e in bt.snapshot("ack")} >= set(seqs), what="ACKs")
        published = 0
        sentinel.sock.settimeout(0.05)
        deadline = time.monotonic() + WAIT
        while True:
            bt.call(bt.b.publish, "flood", "probe")
            published += 1
            try:
                if sentinel.frame()[1] == b"probe":
                    break
            except (socket.timeout, TimeoutError):
                self.assertLess(time.monotonic(), deadline, "subscription never reached the publisher")
        sentinel.sock.settimeout(WAIT)
        return slow, sentinel, published

    def _flood(self, bt, sentinel, published):
        """Publishes the flood (binary, numbered) and an "end" marker, each once the reading
        client on the same core has the one before (so it never falls behind and the core has
        dealt with all of it on return)."""
        size = 32 << 10
        count = self.flood_bytes() // size
        for i in range(count):
            payload = i.to_bytes(4, "big") + bytes(size - 4)
            bt.call(bt.b.publish, "flood", payload, True)
            self.assertEqual(sentinel.frame(), (2, payload))
        bt.call(bt.b.publish, "flood", "end")
        self.assertEqual(sentinel.frame(), (1, b"end"))
        return published + count + 1, count

    def test_08a_slow_consumer_close(self):
        with backends(BackendThread(publish="tcp://127.0.0.1:*")) as (bt,):
            with bridge("--backend", f"{bt.endpoint};slow=close", "--publish", bt.b.publish_endpoint,
                        "--output-budget", "65536", "--close-timeout", "15000") as (url, proc):
                slow, sentinel, published = self._slow_setup(url, bt)
                published, count = self._flood(bt, sentinel, published)
                # Now it reads: whole frames, in order, then Close 1008 "slow consumer".
                last = -1
                while True:
                    op, data = slow.frame()
                    if op == 8:
                        break
                    if op == 2:
                        i = int.from_bytes(data[:4], "big")
                        self.assertGreater(i, last)
                        self.assertEqual(len(data), 32 << 10, "a cut frame")
                        last = i
                self.assertEqual(int.from_bytes(data[:2], "big"), 1008)
                self.assertEqual(data[2:], b"slow consumer")
                self.assertLess(last, count - 1, "it was closed before the end")
                slow.send_close(1008)
                slow_closes = lambda: [e for e in bt.snapshot("close") if e[1].path == "/slow"]  # noqa: E731
                wait_sync(slow_closes, what="CLOSE")
                close = slow_closes()[0]
                self.assertEqual((close[2], close[4]), (1008, "edge"))
                slow.close()
                sentinel.close()
        c = counters(proc.log)
        self.assertEqual(c["bridge_slow_closes_total"], 1)
        self.assertEqual(c["bridge_channel_drops_total"], 0)

    def test_08b_slow_consumer_drop(self):
        with backends(BackendThread(publish="tcp://127.0.0.1:*")) as (bt,):
            with bridge("--backend", f"{bt.endpoint};slow=drop", "--publish", bt.b.publish_endpoint,
                        "--output-budget", "65536", "--close-timeout", "15000") as (url, proc):
                slow, sentinel, published = self._slow_setup(url, bt)
                published, count = self._flood(bt, sentinel, published)
                # It reads again: what was queued, whole and in order, then one gap notice
                # counting exactly what it missed, without another publish to carry it.
                got, last, gap = 0, -1, None
                while gap is None:
                    try:
                        op, data = slow.frame()
                    except (socket.timeout, TimeoutError):
                        self.fail(f"no gap notice after {got} messages, the client drained")
                    self.assertIn(op, (1, 2))
                    if op == 1 and data.startswith(b"{"):
                        gap = json.loads(data)
                        break
                    got += 1
                    if op == 2:
                        i = int.from_bytes(data[:4], "big")
                        self.assertGreater(i, last)
                        self.assertEqual(len(data), 32 << 10, "a cut frame")
                        last = i
                self.assertEqual(gap["wsedge"], "gap")
                self.assertGreater(gap["dropped"], 0)
                self.assertEqual(got + gap["dropped"], published)
                # Later publishes reach it again.
                for i in range(5):
                    bt.call(bt.b.publish, "flood", f"after {i}")
                for i in range(5):
                    self.assertEqual(slow.frame(), (1, f"after {i}".encode()))
                slow.close()
                sentinel.close()
        c = counters(proc.log)
        self.assertEqual(c["bridge_channel_drops_total"], gap["dropped"])
        self.assertEqual(c["bridge_slow_closes_total"], 0)

    # 9 ------------------------------------------------------------------------------------
    def test_09a_outage_refuse(self):
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        with bridge("--backend", f"{endpoint};outage=refuse") as (url, proc):
            head = raw_http(url, "/x")
            self.assertTrue(head.startswith("HTTP/1.1 503"), head)
            self.assertRegex(head, r"(?im)^retry-after: *\d+$")
            with backends(BackendThread(endpoint)) as (bt,):
                wait_sync(lambda: bt.welcomed() == 2, what="both cores welcomed")
                # The backend has sent its WELCOMEs; each core takes them a moment later.
                wait_sync(lambda: all(raw_http(url, f"/x?w={i}").startswith("HTTP/1.1 101")
                                      for i in range(4)), what="both cores accepting")
                for i in range(4):
                    self.assertTrue(raw_http(url, f"/x?c={i}").startswith("HTTP/1.1 101"))
        self.assertGreaterEqual(counters(proc.log)["bridge_outage_refused_total"], 1)

    def test_09b_outage_hold_no_backend(self):
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        with bridge("--backend", endpoint, "--backend-grace", "500",
                    "--backend-close-spread", "500") as (url, proc):
            self.run_async(self._held_then_closed(url, 4))
        self.assertEqual(counters(proc.log)["bridge_outage_closes_total"], 4)

    async def _held_then_closed(self, url, n):
        socks = [await connect(url, f"/h?c={i}") for i in range(n)]
        for ws in socks:
            await ws.send("held")
        for ws in socks:
            code, reason, got = await closed_with(ws)
            assert_outage_close(self, code, reason)
            self.assertEqual(got, [])

    def test_09c_outage_hold_backend_returns(self):
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        first = BackendThread(endpoint, echo=True)
        with backends(first):
            with bridge("--backend", endpoint, "--backend-grace", "4000",
                        "--backend-close-spread", "500") as (url, proc):
                self.run_async(self._comes_back(url, endpoint, first))
        c = counters(proc.log)
        self.assertEqual(c["bridge_outage_closes_total"], 4)
        self.assertGreaterEqual(c["bridge_backend_downs_total"], 4)

    async def _comes_back(self, url, endpoint, first):
        await until(lambda: first.welcomed() == 2, what="both cores welcomed")
        clients = await open_clients(url, first, 4, "back")
        for i, (ws, _) in enumerate(clients):
            await ws.send(f"before {i}")
            self.assertEqual(await recv(ws), f"before {i}")
        await asyncio.to_thread(first.stop)
        for i, (ws, _) in enumerate(clients):
            await ws.send(f"held {i}")
        second = BackendThread(endpoint, echo=True)
        try:
            await until(lambda: second.welcomed() == 2, what="the backend back")
            # The held messages reach it and are answered: the clients were kept.
            # (At least once: "before" may come again if the first had not counted it.)
            for i, (ws, _) in enumerate(clients):
                echo = await recv(ws)
                if echo == f"before {i}":
                    echo = await recv(ws)
                self.assertEqual(echo, f"held {i}")
            held = [e[2].decode() for e in second.snapshot("message")]
            self.assertEqual(sorted(set(held)), sorted([f"held {i}" for i in range(4)] +
                                                       [f"before {i}" for i in range(4) if f"before {i}" in held]))
            # Each connection announced to the new instance: resumed, or its own OPEN again when
            # the first had not counted it (§5.4).
            opens = second.snapshot("open")
            self.assertEqual(sorted(e[1].path for e in opens), sorted(f"/back?c={i}" for i in range(4)))
            # Gone again and not back: closed after the grace.
            await asyncio.to_thread(second.stop)
            for ws, _ in clients:
                code, reason, _ = await closed_with(ws)
                assert_outage_close(self, code, reason)
        finally:
            second.stop()

    # 10 -----------------------------------------------------------------------------------
    def test_10_backpressure(self):
        with backends(BackendThread()) as (bt,):
            with bridge("--backend", bt.endpoint, "--backend-hwm", "4", "--backend-window", "16") as (url, proc):
                self.run_async(self._backpressure(url, bt))
        c = counters(proc.log)
        self.assertGreater(c["bridge_window_full_total"] + c["bridge_backend_full_total"], 0)

    async def _backpressure(self, url, bt):
        await until(lambda: bt.welcomed() == 2, what="both cores welcomed")
        clients = await open_clients(url, bt, 4, "bp")
        gate, entered = threading.Event(), threading.Event()

        def block():
            entered.set()
            gate.wait(30)

        bt.b.call_soon(block)
        await asyncio.to_thread(entered.wait, WAIT)
        n = 200
        try:
            for j in range(n):
                for i, (ws, _) in enumerate(clients):
                    await ws.send(f"c{i}-{j}-" + "x" * 1000)
            await asyncio.sleep(0.2)  # not needed for the result: lets the edge fill up first
        finally:
            gate.set()
        want = {f"/bp?c={i}": [f"c{i}-{j}-" + "x" * 1000 for j in range(n)] for i in range(4)}

        def msgs(path):
            return [e[2].decode() for e in bt.snapshot("message") if e[1].path == path]

        await until(lambda: all(len(msgs(x)) >= n for x in want), what="every message")
        for x in want:
            self.assertEqual(msgs(x), want[x])
        for ws, _ in clients:
            await ws.close()

    # 11 -----------------------------------------------------------------------------------
    def test_11_malformed_backend_input(self):
        ctx = zmq.Context()
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.bind("tcp://127.0.0.1:*")
        endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        try:
            with bridge("--backend", endpoint) as (url, proc):
                bad = self._malformed(url, router)
        finally:
            router.close(0)
            ctx.term()
        self.assertEqual(counters(proc.log)["bridge_bad_messages_total"], bad)

    def _malformed(self, url, router):
        inbox = []

        def recv_until(pred, what):
            deadline = time.monotonic() + WAIT
            while True:
                for i, m in enumerate(inbox):
                    if pred(m):
                        return inbox.pop(i)
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, f"timed out waiting for {what}")
                if router.poll(int(left * 1000) + 1):
                    frames = router.recv_multipart()
                    inbox.append((frames[0], p.decode(frames[1:])))

        rids = set()
        for _ in range(2):
            rid, _ = recv_until(lambda m: m[1].type == p.HELLO, "HELLO")
            rids.add(rid)
            router.send_multipart([rid] + p.encode(p.WELCOME, p.ZERO_ID, [
                ("version", p.u8(1)), ("backend", "raw"), ("instance", p.u64(7))]))
        loop = asyncio.new_event_loop()
        try:
            ws = loop.run_until_complete(connect(url, "/raw"))
            rid, opened = recv_until(lambda m: m[1].type == p.OPEN, "OPEN")
            cid = opened.id
            hdr = p.encode_header(p.SEND, 0, cid)
            cases = [
                ([b"garbage"], "bad-frame", None),
                ([b"XX" + hdr[2:], b""], "bad-frame", None),
                ([hdr[:2] + b"\x09" + hdr[3:], b""], "bad-version", None),
                ([p.encode_header(0x99, 0, cid), b""], "unknown-type", None),
                ([hdr, b"\x05ab"], "bad-meta", None),
                ([p.encode_header(p.SEND, p.FLAG_ACK, cid), p.encode_meta([("seq", p.u32(41))]) + b"\x01"],
                 "bad-meta", None),
                (p.encode(p.PUBLISH, p.ZERO_ID, [("channel", "c"), ("seq", p.u64(1)), ("seq2", p.u32(42))], b"x"),
                 "unknown-type", None),
                (p.encode(p.SUBSCRIBE, cid, [("seq", p.u32(43))], flags=p.FLAG_ACK)[:1], "bad-frame", None),
                (p.encode(p.SEND, p.ZERO_ID, [("ids", b"\x00" * 17), ("seq", p.u32(44))], b"x", p.FLAG_ACK),
                 "bad-meta", 44),
                (p.encode(p.SEND, cid, [("seq", p.u32(45))], b"\xff\xfe", p.FLAG_ACK), "bad-frame", 45),
                (p.encode(p.OPEN, cid, [("seq", p.u32(46))]), "unknown-type", 46),
            ]
            for frames, code, seq in cases:
                router.send_multipart([rid] + frames)
                _, err = recv_until(lambda m: m[1].type in (p.ERROR, p.ACK), f"an answer ({code})")
                self.assertEqual((err.type, err.text("code")), (p.ERROR, code), f"answer to {frames!r}")
                if seq is not None:
                    self.assertEqual(p.read_u32(err.meta.get("seq", b"\0\0\0\0")), seq,
                                     f"the seq of {code} for {frames!r}")
            # Nothing more: no ACK after an ERROR (a command answered twice).
            router.send_multipart([rid] + p.encode(p.SEND, cid, [("seq", p.u32(47))], b"still here", p.FLAG_ACK))
            _, ack = recv_until(lambda m: m[1].type in (p.ERROR, p.ACK), "ACK")
            self.assertEqual((ack.type, p.read_u32(ack.meta["seq"])), (p.ACK, 47),
                             "a command answered twice, or the edge stopped answering")
            # Still serving: both ways.
            self.assertEqual(loop.run_until_complete(recv(ws)), "still here")
            loop.run_until_complete(ws.send("up"))
            _, m = recv_until(lambda m: m[1].type == p.MESSAGE, "MESSAGE")
            self.assertEqual(m.payload, b"up")
            loop.run_until_complete(ws.close())
        finally:
            loop.close()
        return len(cases)

    # 12 -----------------------------------------------------------------------------------
    def test_12_outage_close_code(self):
        """§8: held clients are closed with 1013 "try again later"; a backend's CLOSE with
        1013 reaches the client as 1013."""
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        with bridge("--backend", endpoint, "--backend-grace", "200",
                    "--backend-close-spread", "100") as (url, proc):
            async def go():
                ws = await connect(url, "/code")
                code, reason, _ = await closed_with(ws)
                return code, reason
            self.assertEqual(asyncio.run(go()), (1013, "backend unavailable"))
        with backends(BackendThread()) as (bt,):
            with bridge("--backend", bt.endpoint) as (url, proc):
                async def go2():
                    ws = await connect(url, "/code")
                    await until(lambda: bt.conn_by_path("/code"), what="OPEN")
                    await bt.acall(bt.b.close, bt.conn_by_path("/code"), 1013, "later")
                    code, reason, _ = await closed_with(ws)
                    return code, reason
                self.assertEqual(asyncio.run(go2()), (1013, "later"))

    def test_15_snapshot_lists_connections_and_channels(self):
        """§5.3: a backend that asks for a snapshot learns every connection routed to it, on
        every core, with its channels."""
        with backends(BackendThread()) as (bt,):
            got = []
            bt.b.on_snapshot(lambda entries: got.append(entries))
            with bridge("--backend", bt.endpoint) as (url, _):
                async def go():
                    await until(lambda: bt.welcomed() == 2, what="both cores welcomed")
                    socks = [await connect(url, f"/snap?c={i}") for i in range(6)]
                    await until(lambda: len(bt.snapshot("open")) == 6, what="6 OPENs")
                    want = {}
                    for i in range(6):
                        conn = bt.conn_by_path(f"/snap?c={i}")
                        chans = ["even", f"c{i}"] if i % 2 == 0 else []
                        if chans:
                            await bt.acall(lambda c=conn, ch=chans: bt.b.subscribe(c, *ch, ack=True))
                        want[str(conn.id)] = sorted(chans)
                    await until(lambda: len(bt.snapshot("ack")) == 3, what="3 ACKs")
                    await bt.acall(bt.b.request_snapshot)
                    await until(lambda: len(got) == 2,
                                what=lambda: f"a snapshot from each core: {len(got)} complete, parts "
                                f"of {list(bt.b._snapshots)} pending, backend stats {bt.b.stats}")
                    have = {str(cid): sorted(ch) for part in got for cid, ch in part}
                    self.assertEqual(have, want)
                    for ws in socks:
                        await ws.close()
                asyncio.run(asyncio.wait_for(go(), 60))

    def test_16_subprotocol_chosen_by_route(self):
        """The route's most preferred subprotocol the client offers is answered in the 101 and
        told to the backend in OPEN; a client offering none of them gets none."""
        with backends(BackendThread()) as (bt,):
            with bridge("--backend", f"{bt.endpoint};protocols=chat.v2|chat.v1") as (url, _):
                async def go():
                    await until(lambda: bt.welcomed() == 2, what="both cores welcomed")
                    a = await connect(url, "/p?a", subprotocols=["chat.v1", "chat.v2"])
                    b = await connect(url, "/p?b", subprotocols=["other"])
                    self.assertEqual(a.subprotocol, "chat.v2")
                    self.assertIsNone(b.subprotocol)
                    await until(lambda: len(bt.snapshot("open")) == 2, what="2 OPENs")
                    self.assertEqual(bt.conn_by_path("/p?a").protocol, "chat.v2")
                    self.assertFalse(bt.conn_by_path("/p?b").protocol)
                    await a.close()
                    await b.close()
                asyncio.run(asyncio.wait_for(go(), 60))


    def test_17_compressed_publish_and_sends(self):
        """Publishes and backend sends reach clients compressed as each negotiated: the default
        route without context takeover, a context-takeover route (whose clients keep one zlib
        window: each shared publish frame makes the edge reset its own stream, or the echo after
        it would refer past what the client's window holds), a route with deflate off, and a
        client that offers nothing. Backends see inflated payloads."""
        with backends(BackendThread(publish="tcp://127.0.0.1:*", echo=True)) as (bt,):
            routes = ("--backend", bt.endpoint, "--publish", bt.b.publish_endpoint,
                      "--route", f"/ctx={bt.endpoint};deflate=context-takeover",
                      "--route", f"/off={bt.endpoint};deflate=off")
            with bridge(*routes) as (url, proc):
                self.run_async(self._compressed(url, bt))
        c = sum_counters(proc.log, r"\w*deflate\w*|messages_inflated\w*", "core_stopped")
        self.assertGreater(c["messages_deflated_total"], 0)
        self.assertGreater(c["deflate_in_bytes_total"], 3 * c["deflate_out_bytes_total"])
        self.assertGreater(c["messages_inflated_total"], 0)

    async def _compressed(self, url, bt):
        await until(lambda: bt.welcomed() == 2, what="both cores welcomed")
        kinds = [("/sub", "deflate"), ("/sub", "deflate"), ("/ctx", "deflate"), ("/ctx", "deflate"),
                 ("/off", "deflate"), ("/sub", None)]
        socks = []
        for i, (path, comp) in enumerate(kinds):
            socks.append(await connect(url, f"{path}?c={i}", compression=comp, max_size=None))
        answers = [ws.response_headers.get("Sec-WebSocket-Extensions") for ws in socks]
        stateless = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        self.assertEqual(answers, [stateless, stateless, "permessage-deflate; client_max_window_bits=15",
                                   "permessage-deflate; client_max_window_bits=15", None, None])
        await until(lambda: len(bt.snapshot("open")) == len(kinds), what="OPENs")
        conns = [bt.conn_by_path(f"{path}?c={i}") for i, (path, _) in enumerate(kinds)]
        seqs = [await bt.acall(lambda c=conn: bt.b.subscribe(c, "news", ack=True)) for conn in conns]
        await until(lambda: {e[1] for e in bt.snapshot("ack")} >= set(seqs), what="subscribe ACKs")
        await self._probe(bt, socks, "news")
        doc = lambda i: json.dumps([{"id": i * 100 + k, "user": f"user{k % 7}", "text": "hello " * (k % 5)}
                                    for k in range(40)])
        for i in range(20):
            await bt.acall(bt.b.publish, "news", doc(i))
            for ws in socks:
                self.assertEqual(await recv(ws), doc(i))
            # Each client's own message comes back through its connection's send path.
            for k, ws in enumerate(socks):
                await ws.send(doc(1000 + k))
                self.assertEqual(await recv(ws), doc(1000 + k))
        for ws in socks:
            await ws.close()


    def test_18_io_threads_on_any_cpu_yielding_to_reactors(self):
        """With --backend, libzmq starts its threads from a core's pinned thread; without
        bridge/io_threads they would inherit its one CPU. They may use every CPU the process
        may, under SCHED_BATCH where the kernel allows it (a thread of ours is asked first)."""
        allowed_here = []

        def probe():
            try:
                os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
                allowed_here.append(True)
            except OSError:
                pass
        t = threading.Thread(target=probe)
        t.start()
        t.join()
        batch = bool(allowed_here)
        with backends(BackendThread()) as (bt,):
            with bridge("--backend", bt.endpoint) as (url, proc):
                wait_sync(lambda: bt.welcomed() == 2, what="both cores welcomed")
                allowed = os.sched_getaffinity(proc.pid)
                zmq_threads = []
                for tid in os.listdir(f"/proc/{proc.pid}/task"):
                    try:
                        with open(f"/proc/{proc.pid}/task/{tid}/comm") as f:
                            if f.read().startswith("ZMQbg/"):
                                zmq_threads.append(int(tid))
                    except OSError:  # a thread that ended since the listing (io_uring's workers)
                        pass
                self.assertGreaterEqual(len(zmq_threads), 2, "an I/O thread and the reaper")
                for tid in zmq_threads:
                    # With one CPU allowed this passes either way; CI's machine has two.
                    self.assertEqual(os.sched_getaffinity(tid), allowed)
                    self.assertEqual(os.sched_getscheduler(tid), os.SCHED_BATCH if batch else os.sched_getscheduler(0))
        policy = "batch" if batch else "inherited"
        self.assertIn(f'"event":"bridge_io_threads","count":1,"policy":"{policy}"', proc.log)

class SilentBackend:
    """WELCOMEs every HELLO and records events, but never counts them (no RECEIVED): all an
    edge sent it stays in the edge's window."""

    def __init__(self, endpoint):
        self.ctx = zmq.Context()
        self.s = self.ctx.socket(zmq.ROUTER)
        self.s.linger = 0
        self.s.bind(endpoint)
        self.events, self.stopping, self.welcomed = [], False, 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stopping:
            if not self.s.poll(20):
                continue
            fr = self.s.recv_multipart()
            rid, m = fr[0], p.decode(fr[1:])
            if m.type == p.HELLO:
                self.s.send_multipart([rid] + p.encode(p.WELCOME, p.ZERO_ID, [
                    ("version", p.u8(1)), ("backend", b"silent"), ("instance", p.u64(7))]))
                self.welcomed += 1
            elif m.type in (p.OPEN, p.MESSAGE, p.CLOSE):
                self.events.append((m.type, m.id))

    def close(self):
        self.stopping = True
        self.t.join()
        self.s.close()
        self.ctx.term()


class ReviewRegressions(unittest.TestCase):
    """Failures an independent review found, each shown failing before its fix."""

    def test_13_clients_on_a_sibling_that_never_came_up_move_to_the_one_that_did(self):
        ea, eb = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
        # Neither backend is up when the clients come; only A ever comes. Before: the clients
        # hashed to B stayed paused for ever (A's WELCOME cancelled the grace period).
        with bridge("--backend", f"{ea},{eb}", "--backend-grace", "1000") as (url, _):
            async def go():
                socks = [await connect(url, f"/s?c={i}") for i in range(12)]
                a = BackendThread(endpoint=ea, name="a")
                try:
                    await until(lambda: a.welcomed() == 2, what="a up")
                    for ws in socks:
                        await ws.send("m")
                    want = {f"/s?c={i}" for i in range(12)}
                    await until(lambda: {e[1].path for e in a.snapshot("message")} == want,
                                what="every client's message at a")
                finally:
                    await asyncio.to_thread(a.stop)
            asyncio.run(asyncio.wait_for(go(), 60))

    def test_14_failover_carries_what_closed_clients_sent(self):
        ea = f"tcp://127.0.0.1:{free_port()}"
        a = SilentBackend(ea)
        b = BackendThread(name="b")
        try:
            with bridge("--backend", f"{ea},{b.endpoint}") as (url, _):
                async def go():
                    await until(lambda: a.welcomed == 2 and b.welcomed() == 2, what="both up")
                    socks = [await connect(url, f"/x?c={i}") for i in range(10)]
                    await until(lambda: len([e for e in a.events if e[0] == p.OPEN]) +
                                len(b.snapshot("open")) == 10, what="opens")
                    on_a = [e[1] for e in a.events if e[0] == p.OPEN]
                    for i, ws in enumerate(socks):
                        await ws.send(f"last words {i}")
                        await ws.close()
                    # A dies having counted nothing: what its clients sent before they left
                    # must reach B. Before: dropped at failover.
                    await asyncio.to_thread(a.close)
                    await until(lambda: all(any(e[0] == "message" and e[1].id == i
                                                for e in b.snapshot()) for i in on_a),
                                what="the closed clients' messages at b")
                asyncio.run(asyncio.wait_for(go(), 60))
        finally:
            b.stop()


def main():
    global BINARY
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    BINARY = os.path.abspath(sys.argv[1])
    argv = [sys.argv[0]] + sys.argv[2:]
    # A watchdog: a hung run fails instead of waiting for meson's timeout.
    threading.Timer(240, lambda: (print("watchdog: bridge tests hung", file=sys.stderr),
                                  os._exit(1))).start()
    prog = unittest.main(argv=argv, exit=False)
    os._exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
