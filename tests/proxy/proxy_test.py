#!/usr/bin/python3
"""The PROXY protocol on wsedge's listeners (docs/OPERATIONS.md §5): behind a real HAProxy
(Debian's, run here as a child with a config in a temporary directory) sending v2
(send-proxy-v2) and v1 (send-proxy), over ws and wss; hand-written headers naming other
addresses, which the backend's OPEN and the per-address limits must see; malformed and missing
headers, which close the connection and are counted in the exit log.

usage: proxy_test.py WSEDGE_BINARY [unittest options]     exit 0 on success, 1 on failure

HAProxy connects from 127.0.0.1 like the clients do, so the ports tell: a client's OPEN names
the client's own source port, not the one HAProxy connected from. Every wait is bounded.
"""
import asyncio
import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "bridge"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))

from bridge_test import BackendThread, backends, connect, free_port, recv, until, wait_sync  # noqa: E402
from wsedge_server import host_port, make_cert, start_server  # noqa: E402
from log_lines import sum_counters  # noqa: E402

BINARY = None
WAIT = 10.0
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
V2_SIG = b"\r\n\r\n\0\r\nQUIT\n"


def core_counters(log, names=r"proxy_\w+"):
    """Sums the per-core counters of wsedge's exit log ("core_stopped" lines) whose names match
    the pattern `names`."""
    return sum_counters(log, names, "core_stopped")


def v1(src, sport, dport=443):
    """A v1 line from src:sport to a destination of the same family."""
    fam, dst = ("TCP6", "2001:db8::1") if ":" in src else ("TCP4", "192.0.2.1")
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, sport, dport=443, cmd=1, tlvs=b""):
    """A v2 header (cmd 1 PROXY, 0 LOCAL) from src:sport to a destination of the same family."""
    ip = ipaddress.ip_address(src)
    if ip.version == 4:
        fam, addrs = 0x11, ip.packed + ipaddress.ip_address("192.0.2.1").packed
    else:
        fam, addrs = 0x21, ip.packed + ipaddress.ip_address("2001:db8::1").packed
    body = addrs + struct.pack(">HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


def upgrade_request(path="/", host="edge"):
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


def raw(url, *pieces, pause=0.02):
    """Connects to the server of `url` and sends each piece in its own write (TCP_NODELAY, a
    pause between them, so each tends to arrive in a read of its own); returns the socket."""
    s = socket.create_connection(host_port(url), timeout=WAIT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i, p in enumerate(pieces):
        if i:
            time.sleep(pause)
        s.sendall(p)
    return s


def answer(s):
    """What the server sends before it closes, up to the end of an HTTP head; b"" when it
    closes (or resets) without a word."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data


def closed_silently(s):
    """The server closes (FIN or RST) without sending anything."""
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True


class Haproxy:
    """haproxy -db with two TCP frontends relaying to `target`: one with send-proxy-v2, one
    with send-proxy (v1). Ports picked free."""

    def __init__(self, tmp, target):
        self.v2_port, self.v1_port = free_port(), free_port()
        cfg = os.path.join(tmp, f"haproxy-{self.v2_port}.cfg")
        host, port = target
        with open(cfg, "w") as f:
            f.write(f"""global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe_v2
    bind 127.0.0.1:{self.v2_port}
    default_backend be_v2
backend be_v2
    server s {host}:{port} send-proxy-v2
frontend fe_v1
    bind 127.0.0.1:{self.v1_port}
    default_backend be_v1
backend be_v1
    server s {host}:{port} send-proxy
""")
        self.log = open(os.path.join(tmp, f"haproxy-{self.v2_port}.log"), "w+")
        self.proc = subprocess.Popen(["haproxy", "-f", cfg, "-db"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for port in (self.v2_port, self.v1_port):
            wait_sync(lambda: self._listening(port), what=f"haproxy on port {port}")

    def _listening(self, port):
        """Whether the port is taken, found without connecting: a probe through HAProxy would
        reach wsedge and count as a header."""
        if self.proc.poll() is not None:
            self.log.seek(0)
            raise AssertionError(f"haproxy exited: {self.log.read()}")
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return True
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@contextlib.contextmanager
def haproxy(tmp, url):
    h = Haproxy(tmp, host_port(url))
    try:
        yield h
    finally:
        h.stop()


@contextlib.contextmanager
def server(*flags, **kw):
    """start_server(BINARY, FLAGS...) that closes the process's pipes afterwards; yields
    (url, proc), proc.log holding the exit log."""
    proc = None
    try:
        with start_server(BINARY, *flags, **kw) as (url, proc):
            yield url, proc
    finally:
        if proc is not None:
            proc.stdout.close()
            proc.stderr.close()


def bridge(*flags, **kw):
    """wsedge --app bridge --cores 2 --proxy-protocol FLAGS."""
    return server("--cores", "2", "--proxy-protocol", *flags, app="bridge", **kw)


class ThroughHaproxy(unittest.TestCase):
    """Real clients through a real HAProxy: the backend's OPEN names each client."""

    @classmethod
    def setUpClass(cls):
        if shutil.which("haproxy") is None:
            raise unittest.SkipTest("haproxy is not installed (scripts/install-deps.sh)")

    def through(self, tls):
        with tempfile.TemporaryDirectory() as tmp:
            cert = make_cert(tmp, "localhost") if tls else None
            client_ssl = None
            if tls:
                client_ssl = ssl.create_default_context(cafile=cert[0])
            bt = BackendThread()
            with backends(bt), bridge("--backend", bt.endpoint, tls=cert) as (url, proc), \
                    haproxy(tmp, url) as h:
                scheme = "wss" if tls else "ws"

                async def run():
                    seen = {}
                    for version, port in (("v2", h.v2_port), ("v1", h.v1_port)):
                        ws = await connect(f"{scheme}://127.0.0.1:{port}", f"/{version}",
                                           ssl=client_ssl)
                        conn = await until(lambda: bt.conn_by_path(f"/{version}"),
                                           what=f"OPEN through {version}")
                        seen[version] = (conn.peer, ws.local_address[1])
                        await bt.acall(bt.b.send, conn, b"hi " + version.encode())
                        self.assertEqual(await recv(ws), "hi " + version)
                        await ws.close()
                    return seen

                seen = asyncio.run(run())
            for version, (peer, client_port) in seen.items():
                # The client's own port: HAProxy's header, not HAProxy's connection.
                self.assertEqual(peer, f"127.0.0.1:{client_port}", version)
            self.assertEqual(core_counters(proc.log),
                             {"proxy_headers_total": 2, "proxy_header_errors_total": 0})

    def test_ws_through_haproxy_v2_and_v1(self):
        self.through(tls=False)

    def test_wss_through_haproxy_v2_and_v1(self):
        # The header comes before the ClientHello, which HAProxy relays in mode tcp.
        self.through(tls=True)


class HandWritten(unittest.TestCase):
    """Headers naming addresses other than 127.0.0.1, as a proxy elsewhere would send them."""

    def test_backend_sees_the_address_the_header_names(self):
        bt = BackendThread()
        with backends(bt), bridge("--backend", bt.endpoint) as (url, proc):
            cases = [
                ("/v2-inet", [v2("203.0.113.7", 5555) + upgrade_request("/v2-inet")],
                 "203.0.113.7:5555"),
                ("/v2-inet6", [v2("2001:db8::7", 1234) + upgrade_request("/v2-inet6")],
                 "[2001:db8::7]:1234"),
                ("/v1-inet", [v1("198.51.100.9", 40000) + upgrade_request("/v1-inet")],
                 "198.51.100.9:40000"),
                ("/v1-inet6", [v1("2001:db8::9", 80) + upgrade_request("/v1-inet6")],
                 "[2001:db8::9]:80"),
                # With TLVs (ALPN, authority), which are skipped.
                ("/v2-tlvs", [v2("203.0.113.8", 1, tlvs=b"\x01\x00\x02h2\x02\x00\x04edge")
                              + upgrade_request("/v2-tlvs")], "203.0.113.8:1"),
                # Byte by byte over many writes, the last byte with the upgrade request.
                ("/v2-split", [bytes([b]) for b in v2("203.0.113.9", 9)[:-1]]
                 + [v2("203.0.113.9", 9)[-1:] + upgrade_request("/v2-split")],
                 "203.0.113.9:9"),
                ("/v1-split", [bytes([b]) for b in v1("203.0.113.10", 10)]
                 + [upgrade_request("/v1-split")], "203.0.113.10:10"),
            ]
            socks = []
            for path, pieces, want in cases:
                s = raw(url, *pieces, pause=0.005)
                socks.append(s)
                self.assertTrue(answer(s).startswith(b"HTTP/1.1 101"), path)
                wait_sync(lambda: bt.conn_by_path(path), what=f"OPEN of {path}")
                self.assertEqual(bt.conn_by_path(path).peer, want, path)
            # LOCAL (a health check from the proxy itself): the connection's own address.
            s = raw(url, v2("203.0.113.7", 5555, cmd=0) + upgrade_request("/local"))
            socks.append(s)
            self.assertTrue(answer(s).startswith(b"HTTP/1.1 101"))
            wait_sync(lambda: bt.conn_by_path("/local"), what="OPEN of /local")
            self.assertEqual(bt.conn_by_path("/local").peer,
                             f"127.0.0.1:{s.getsockname()[1]}")
            for s in socks:
                s.close()
        self.assertEqual(core_counters(proc.log),
                         {"proxy_headers_total": len(cases) + 1, "proxy_header_errors_total": 0})

    def test_per_address_limits_count_the_named_addresses(self):
        # One core: the per-address table is per core. Every connection comes from 127.0.0.1;
        # each header names its own client.
        with server("--cores", "1", "--proxy-protocol",
                          "--max-connections-per-ip", "1") as (url, proc):
            a = raw(url, v2("203.0.113.7", 5555) + upgrade_request())
            self.assertTrue(answer(a).startswith(b"HTTP/1.1 101"))
            b = raw(url, v1("203.0.113.8", 5556) + upgrade_request())
            self.assertTrue(answer(b).startswith(b"HTTP/1.1 101"), "another address")
            c = raw(url, v1("2001:db8::7", 5557) + upgrade_request())
            self.assertTrue(answer(c).startswith(b"HTTP/1.1 101"), "a v6 address")
            d = raw(url, v1("203.0.113.7", 6000) + upgrade_request())
            self.assertTrue(answer(d).startswith(b"HTTP/1.1 503"), "a's address again")
            a.close()
            # a's place is given back once the server sees it go: until then, 503.
            deadline = time.monotonic() + WAIT
            tries = 0
            while True:
                tries += 1
                e = raw(url, v2("203.0.113.7", 6001) + upgrade_request())
                got = answer(e)
                e.close()
                if got.startswith(b"HTTP/1.1 101") or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertTrue(got.startswith(b"HTTP/1.1 101"), got)
            for s in (b, c, d):
                s.close()
        self.assertEqual(core_counters(proc.log, r"ip_conn_refused_total|proxy_\w+"),
                         {"proxy_headers_total": 4 + tries, "proxy_header_errors_total": 0,
                          "ip_conn_refused_total": tries})


# A TLS 1.2 ClientHello's first bytes: what a client sends when it bypasses the proxy on a
# wss port.
CLIENT_HELLO = bytes.fromhex("16030100c4010000c00303") + bytes(32) + b"\x00\x00\x02\x13\x01"

MALFORMED = [
    ("bad v2 signature", V2_SIG[:-1] + b"\x0b" + v2("203.0.113.7", 1)[12:]),
    ("v2 version 1", V2_SIG + b"\x11" + v2("203.0.113.7", 1)[13:]),
    ("v2 UDP", V2_SIG + b"\x21\x12" + v2("203.0.113.7", 1)[14:]),
    ("v2 length too short", V2_SIG + b"\x21\x21\x00\x0c" + v2("203.0.113.7", 1)[16:]),
    ("v2 too long", V2_SIG + b"\x21\x11\x10\x00"),
    ("v1 too long", b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n"),
    ("v1 bad address", b"PROXY TCP4 203.0.113.300 192.0.2.1 1 2\r\n"),
    ("v1 bad port", b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 2\r\n"),
    ("v1 junk after the ports", b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2 junk\r\n"),
    ("v1 bare LF", b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\n"),
    ("no header: a plain GET", upgrade_request()),
    ("no header: a health check", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("no header: a TLS ClientHello", CLIENT_HELLO),
]


class Refused(unittest.TestCase):
    def test_malformed_or_missing_headers_close_and_are_counted(self):
        with server("--cores", "2", "--proxy-protocol") as (url, proc):
            for name, data in MALFORMED:
                with self.subTest(name):
                    s = raw(url, data + upgrade_request())
                    self.assertTrue(closed_silently(s), name)
                    s.close()
            # A valid header followed by what is not HTTP: the header is accepted, then the
            # request refused as any bad request is (400), the connection closed.
            s = raw(url, v1("203.0.113.7", 1) + b"garbage\r\n\r\n")
            self.assertTrue(answer(s).startswith(b"HTTP/1.1 400"))
            s.close()
        self.assertEqual(core_counters(proc.log),
                         {"proxy_headers_total": 1, "proxy_header_errors_total": len(MALFORMED)})

    def test_a_direct_tls_client_is_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            cert = make_cert(tmp, "localhost")
            with server("--cores", "1", "--proxy-protocol", tls=cert) as (url, proc):
                ctx = ssl.create_default_context(cafile=cert[0])
                with socket.create_connection(host_port(url), timeout=WAIT) as s:
                    with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError)):
                        ctx.wrap_socket(s, server_hostname="localhost")
                # With the header first, the same client's handshake goes through.
                with socket.create_connection(host_port(url), timeout=WAIT) as s:
                    s.sendall(v2("203.0.113.7", 5555))
                    with ctx.wrap_socket(s, server_hostname="localhost") as t:
                        t.sendall(upgrade_request())
                        self.assertTrue(answer(t).startswith(b"HTTP/1.1 101"))
        self.assertEqual(core_counters(proc.log),
                         {"proxy_headers_total": 1, "proxy_header_errors_total": 1})


class SplitBeforeTls(unittest.TestCase):
    """The header in several reads, the last of which also carries the first bytes of the
    ClientHello: those bytes must reach TLS (lost, the handshake would hang until its
    deadline), whichever the command (PROXY, or LOCAL: the proxy's own health check)."""

    @staticmethod
    def handshake(url, header, ctx, cut_hello):
        """Sends header[:5], then header[5:] with the ClientHello's first `cut_hello` bytes,
        then the rest of the ClientHello; completes TLS over a memory BIO and upgrades.
        Returns the server's answer to the upgrade."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = outgoing.read()
        s = raw(url, header[:5], header[5:] + hello[:cut_hello], hello[cut_hello:])
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pending = outgoing.read()
                    if pending:
                        s.sendall(pending)
                    chunk = s.recv(65536)
                    if not chunk:
                        return b""
                    incoming.write(chunk)
            s.sendall(outgoing.read())
            tls.write(upgrade_request())
            s.sendall(outgoing.read())
            data = b""
            while b"\r\n\r\n" not in data:
                try:
                    data += tls.read(4096)
                except ssl.SSLWantReadError:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    incoming.write(chunk)
            return data
        finally:
            s.close()

    def test_first_tls_bytes_in_the_read_that_ends_the_header(self):
        with tempfile.TemporaryDirectory() as tmp:
            cert = make_cert(tmp, "localhost")
            ctx = ssl.create_default_context(cafile=cert[0])
            cases = [("v2 PROXY", v2("203.0.113.7", 5555)),
                     ("v2 LOCAL", v2("203.0.113.7", 5555, cmd=0)),
                     ("v1", v1("203.0.113.7", 5555))]
            with server("--cores", "1", "--proxy-protocol", tls=cert) as (url, proc):
                for name, header in cases:
                    for cut in (1, 40):
                        with self.subTest(name, cut=cut):
                            answer_ = self.handshake(url, header, ctx, cut)
                            self.assertTrue(answer_.startswith(b"HTTP/1.1 101"), answer_[:60])
        self.assertEqual(core_counters(proc.log),
                         {"proxy_headers_total": 6, "proxy_header_errors_total": 0})


class PerListener(unittest.TestCase):
    def test_only_the_flagged_listener_expects_the_header(self):
        # start_server's own --listen is the first (plain); the second expects the header.
        with server("--cores", "1",
                          "--listen", "127.0.0.1:0;proxy-protocol") as (url, proc):
            line = proc.stdout.readline()
            self.assertTrue(line.startswith("listening on "), line)
            proxied = line.split()[2]
            s = raw(url, upgrade_request())
            self.assertTrue(answer(s).startswith(b"HTTP/1.1 101"), "plain listener")
            s.close()
            s = raw(proxied, upgrade_request())
            self.assertTrue(closed_silently(s), "proxy listener without a header")
            s.close()
            s = raw(proxied, v1("203.0.113.7", 1) + upgrade_request())
            self.assertTrue(answer(s).startswith(b"HTTP/1.1 101"), "proxy listener with one")
            s.close()
            # A PROXY header on the plain listener is just a bad request there.
            s = raw(url, v1("203.0.113.7", 1) + upgrade_request())
            self.assertTrue(answer(s).startswith(b"HTTP/1.1 4"))
            s.close()
        self.assertEqual(core_counters(proc.log),
                         {"proxy_headers_total": 1, "proxy_header_errors_total": 1})

    def test_an_unknown_listener_option_is_refused(self):
        r = subprocess.run([BINARY, "--plain", "--listen", "127.0.0.1:0;proxy"],
                           capture_output=True, text=True, timeout=WAIT)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--listen: unknown option 'proxy'", r.stderr)


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
