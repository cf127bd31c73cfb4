"""RFC 6455 conformance of a running wsedge, over real sockets, byte by byte.

Covers what conformance suites such as Autobahn check for a server: framing, ping/pong,
reserved bits and opcodes, fragmentation with interleaved control frames, UTF-8 (including
failing fast on the first invalid byte), the closing handshake and close codes, size limits up
to 16 MiB, the opening handshake, timers, backpressure and graceful shutdown. Each case asserts
the exact close code the server sends. Python standard library only.

usage: conformance.py PATH_TO_WSEDGE [--tls] [-k SUBSTRING]
With --tls everything runs over wss:// (a fresh self-signed certificate).
"""
import os
import signal
import socket
import ssl
import struct
import tempfile
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from wsedge_server import host_port, make_cert, start_server  # noqa: E402

TIMEOUT = 10.0
CASES = []
TLS = None  # (cert, key) and CLIENT_SSL when running over wss://
CLIENT_SSL = None


def case(name):
    def register(fn):
        CASES.append((name, fn))
        return fn
    return register


def mask_bytes(payload, key):
    if not payload:
        return b""
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def build_frame(opcode, payload=b"", fin=True, rsv=0, masked=True, key=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if masked else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if not masked:
        return hdr + payload
    key = key or os.urandom(4)
    return hdr + key + mask_bytes(payload, key)


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Client:
    def __init__(self, addr, handshake=True, path="/"):
        self.sock = socket.create_connection(addr, timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if CLIENT_SSL:
            self.sock = CLIENT_SSL.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        if handshake:
            self.sock.sendall(request(path).encode())
            status, _ = self.read_http()
            assert status == 101, f"handshake answered {status}"

    def read_http(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("connection closed during HTTP response")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        return int(lines[0].split()[1]), lines[1:]

    def send(self, data, chop=None):
        if chop is None:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), chop):
            self.sock.sendall(data[i:i + chop])
            time.sleep(0.0005)

    def frame(self, opcode, payload=b"", **kw):
        chop = kw.pop("chop", None)
        self.send(build_frame(opcode, payload, **kw), chop)

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk

    def read_frame(self):
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frames must not be masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload

    def expect(self, opcode, payload):
        fin, rsv, op, got = self.read_frame()
        assert (fin, rsv, op) == (True, 0, opcode), f"frame fin={fin} rsv={rsv} op={op}, wanted op {opcode}"
        assert got == payload, f"payload differs: {len(got)} bytes vs {len(payload)} expected"

    def expect_close(self, code, answer=True):
        """Reads up to the server's Close, checks its code, and that TCP is closed after it."""
        while True:
            fin, rsv, op, payload = self.read_frame()
            if op == 8:
                break
            assert op in (1, 2, 9, 10), f"unexpected opcode {op} before close"
        got = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        assert got == code, f"close code {got}, expected {code}"
        if answer:
            try:
                self.sock.sendall(build_frame(8, payload[:2]))
            except OSError:
                pass
        self.expect_eof()
        return payload[2:]

    def expect_eof(self):
        """Waits for the server's FIN (or reset), then closes our side as a client should."""
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):  # a reset, or TLS ended without close_notify
                chunk = b""
            if not chunk:
                self.sock.close()
                return
        raise AssertionError("server did not close the TCP connection")

    def close(self):
        self.sock.close()


def request(path="/", **override):
    headers = {
        "Host": "localhost",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    for k, v in override.items():
        k = k.replace("_", "-")
        if v is None:
            headers.pop(k, None)
        else:
            headers[k] = v
    return f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"


def expect_failure(name, code, *frames):
    """Registers a case: the frames are sent in one write; the server must close with `code`."""
    def run(addr):
        c = Client(addr)
        c.send(b"".join(frames))
        c.expect_close(code)
    case(f"{name} -> {code}")(run)


# ---------------------------------------------------------------- 1 framing
for size in (0, 1, 125, 126, 127, 128, 65535, 65536, 65537, 1 << 20):
    for opcode in (1, 2):
        def _echo(addr, size=size, opcode=opcode):
            c = Client(addr)
            payload = (b"*" * size) if opcode == 1 else os.urandom(size)
            c.frame(opcode, payload)
            c.expect(opcode, payload)
            c.frame(8, close_payload(1000))
            c.expect_close(1000, answer=False)
        case(f"framing: {'text' if opcode == 1 else 'binary'} echo {size} bytes")(_echo)


@case("framing: frames chopped into 1-byte writes")
def _(addr):
    c = Client(addr)
    for p in (b"", b"Hello", b"x" * 300):
        c.frame(1, p, chop=1)
        c.expect(1, p)


@case("framing: many frames in one write")
def _(addr):
    c = Client(addr)
    msgs = [os.urandom(i) for i in range(200)]
    c.send(b"".join(build_frame(2, m) for m in msgs))
    for m in msgs:
        c.expect(2, m)


expect_failure("framing: unmasked client frame", 1002, build_frame(1, b"hi", masked=False))


# ---------------------------------------------------------------- 2 ping/pong
@case("pings: empty ping answered with empty pong")
def _(addr):
    c = Client(addr)
    c.frame(9)
    c.expect(10, b"")


@case("pings: 125-byte binary ping echoed in pong")
def _(addr):
    c = Client(addr)
    p = bytes(range(125))
    c.frame(9, p)
    c.expect(10, p)


expect_failure("pings: 126-byte ping", 1002, build_frame(9, b"p" * 126))


@case("pings: unsolicited pong is ignored")
def _(addr):
    c = Client(addr)
    c.frame(10, b"unsolicited")
    c.frame(1, b"still here")
    c.expect(1, b"still here")


@case("pings: ten pings answered in order")
def _(addr):
    c = Client(addr)
    c.send(b"".join(build_frame(9, str(i).encode()) for i in range(10)))
    for i in range(10):
        c.expect(10, str(i).encode())


@case("pings: ping chopped into 1-byte writes")
def _(addr):
    c = Client(addr)
    c.frame(9, b"chopped", chop=1)
    c.expect(10, b"chopped")


# ---------------------------------------------------------------- 3 reserved bits
for rsv in (1, 2, 3, 4, 5, 6, 7):
    for opcode in (1, 2, 9):
        expect_failure(f"reserved bits: rsv={rsv} on opcode {opcode}", 1002, build_frame(opcode, b"rsv", rsv=rsv))


@case("reserved bits: after a valid echo -> 1002")
def _(addr):
    c = Client(addr)
    c.frame(1, b"ok")
    c.frame(1, b"bad", rsv=4)
    c.expect(1, b"ok")
    c.expect_close(1002)


# ---------------------------------------------------------------- 4 opcodes
for opcode in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
    expect_failure(f"opcodes: reserved opcode {opcode:#x}", 1002, build_frame(opcode, b"x"))


# ---------------------------------------------------------------- 5 fragmentation
@case("fragmentation: text in two fragments echoed whole")
def _(addr):
    c = Client(addr)
    c.frame(1, b"frag", fin=False)
    c.frame(0, b"mented")
    c.expect(1, b"fragmented")


@case("fragmentation: ping between fragments answered first")
def _(addr):
    c = Client(addr)
    c.frame(2, b"a" * 10, fin=False)
    c.frame(9, b"mid")
    c.frame(0, b"b" * 10)
    c.expect(10, b"mid")
    c.expect(2, b"a" * 10 + b"b" * 10)


@case("fragmentation: 1000 one-byte fragments")
def _(addr):
    c = Client(addr)
    data = os.urandom(1000)
    frames = [build_frame(2 if i == 0 else 0, data[i:i + 1], fin=(i == 999)) for i in range(1000)]
    c.send(b"".join(frames))
    c.expect(2, data)


@case("fragmentation: fragments chopped into 1-byte writes")
def _(addr):
    c = Client(addr)
    c.send(build_frame(1, b"Hel", fin=False) + build_frame(9, b"p") + build_frame(0, b"lo"), chop=1)
    c.expect(10, b"p")
    c.expect(1, b"Hello")


@case("fragmentation: empty fragments")
def _(addr):
    c = Client(addr)
    c.frame(1, b"", fin=False)
    c.frame(0, b"", fin=False)
    c.frame(0, b"")
    c.expect(1, b"")


expect_failure("fragmentation: continuation without a start", 1002, build_frame(0, b"orphan"))
expect_failure("fragmentation: fragmented ping", 1002, build_frame(9, b"a", fin=False))
expect_failure("fragmentation: new text inside a fragmented one", 1002,
               build_frame(1, b"a", fin=False), build_frame(1, b"b"))


# ---------------------------------------------------------------- 6 UTF-8
VALID_UTF8 = ["", "Hello-µ@ßöäüàá-UTF-8!!", "κόσμε", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000",
              "\U0010ffff", "\ud7ff", "\ue000", "\ufffd"]
INVALID_UTF8 = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
                b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xfe", b"\xff",
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", b"\xc2", b"ok\xe2\x82"]

for i, s in enumerate(VALID_UTF8):
    def _valid(addr, s=s):
        c = Client(addr)
        c.frame(1, s.encode())
        c.expect(1, s.encode())
        raw = s.encode()
        # The same text split into fragments at every byte.
        for cut in range(1, len(raw)):
            c.frame(1, raw[:cut], fin=False)
            c.frame(0, raw[cut:])
            c.expect(1, raw)
    case(f"utf8: valid text {i} echoed, whole and split at every byte")(_valid)

for i, b in enumerate(INVALID_UTF8):
    expect_failure(f"utf8: invalid text {i}", 1007, build_frame(1, b))
expect_failure("utf8: invalid across fragments", 1007, build_frame(1, b"\xe2\x82", fin=False), build_frame(0, b"A"))
expect_failure("utf8: fails fast, before the message ends", 1007,
               build_frame(1, b"good start \xf5 and the message never finishes", fin=False))
# Only the first 300 bytes of a 100 KB frame are sent: the bad byte must be judged on arrival.
expect_failure("utf8: fails fast inside a frame whose tail never comes", 1007,
               build_frame(1, b"a" * 100 + b"\xc0" + b"a" * 100000)[:300])


# ---------------------------------------------------------------- 7 close
@case("close: empty close answered with empty close")
def _(addr):
    c = Client(addr)
    c.frame(8)
    fin, rsv, op, payload = c.read_frame()
    assert op == 8 and payload == b"", (op, payload)
    c.expect_eof()


for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999):
    def _code(addr, code=code):
        c = Client(addr)
        c.frame(8, close_payload(code, b"reason"))
        c.expect_close(code, answer=False)
    case(f"close: code {code} echoed")(_code)

for code in (0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
    expect_failure(f"close: invalid code {code}", 1002, build_frame(8, close_payload(code)))
expect_failure("close: 1-byte close payload", 1002, build_frame(8, b"\x03"))


@case("close: 123-byte reason accepted")
def _(addr):
    c = Client(addr)
    c.frame(8, close_payload(1000, b"r" * 123))
    c.expect_close(1000, answer=False)


expect_failure("close: invalid UTF-8 reason", 1007, build_frame(8, close_payload(1000, b"\xce\xba\xed\xa0\x80")))


@case("close: data after close is not answered")
def _(addr):
    c = Client(addr)
    c.send(build_frame(8, close_payload(1000)) + build_frame(1, b"late") + build_frame(9, b"late"))
    c.expect_close(1000, answer=False)


@case("close: server closes the TCP connection after the handshake")
def _(addr):
    c = Client(addr)
    c.frame(1, b"x")
    c.expect(1, b"x")
    c.frame(8, close_payload(1000))
    c.expect_close(1000, answer=False)


@case("close: clients that leave as soon as they read the Close never harm the next connection")
def _(addr):
    # Such a client closes before the server's FIN is out; the fd number it frees is at once
    # reused by the next accept, whose connection must not be touched by the old one's close.
    for i in range(1000):
        c = Client(addr)
        c.frame(1, b"n%d" % i)
        c.expect(1, b"n%d" % i)
        c.frame(8, close_payload(1000))
        fin, rsv, op, payload = c.read_frame()
        assert op == 8, f"connection {i}: frame op={op}, wanted Close"
        c.sock.close()


# ---------------------------------------------------------------- 9 limits
def half_close(sock):
    """Shuts down our write side only (TCP FIN). ssl.SSLSocket.shutdown would drop the TLS
    state and with it the replies still to be read, so the plain socket's method is called."""
    socket.socket.shutdown(sock, socket.SHUT_WR)


for size in (15, 64 << 10, 1 << 20):
    def _half(addr, size=size):
        # Before the fix the server aborted on the FIN and dropped queued output: 0 of 40 echoes
        # arrived at 15 B, some of 40 at 64 KiB and 1 MiB.
        for i in range(40):
            c = Client(addr)
            payload = bytes((i + j) % 251 for j in range(size))
            c.frame(2, payload)
            half_close(c.sock)
            c.expect(2, payload)
            c.expect_eof()
    case(f"close: 40 clients that send {size} bytes then shut down their write side get the echo")(_half)


@case("limits: 16 MiB binary message echoed")
def _(addr):
    c = Client(addr)
    p = os.urandom(16 << 20)
    c.frame(2, p)
    c.expect(2, p)


@case("limits: 16 MiB text message in 16 fragments echoed")
def _(addr):
    c = Client(addr)
    part = ("ü" * (1 << 19)).encode()  # 1 MiB of two-byte characters
    for i in range(16):
        c.frame(1 if i == 0 else 0, part, fin=(i == 15))
    c.expect(1, part * 16)


@case("limits: 16 MiB + 1 -> 1009")
def _(addr):
    c = Client(addr)
    # Only the header: the limit is enforced before the payload is read.
    c.send(struct.pack("!BBQ", 0x82, 0xFF, (16 << 20) + 1) + b"\x00\x00\x00\x00")
    c.expect_close(1009)


@case("limits: fragments adding up past 16 MiB -> 1009")
def _(addr):
    c = Client(addr)
    chunk = b"\x00" * (8 << 20)
    c.frame(2, chunk, fin=False)
    c.frame(0, chunk, fin=False)
    c.send(struct.pack("!BB", 0x00, 0x81) + b"\x00\x00\x00\x00")  # header only: 1 more byte
    c.expect_close(1009)


expect_failure("framing: a 16-bit length under 126 (not minimally encoded)", 1002,
               struct.pack("!BBH", 0x82, 0xFE, 5) + b"\0\0\0\0" + b"hello")
expect_failure("framing: a 64-bit length under 65536 (not minimally encoded)", 1002,
               struct.pack("!BBQ", 0x82, 0xFF, 5) + b"\0\0\0\0" + b"hello")


# ---------------------------------------------------------------- 12 opening handshake
def http_status(addr, raw):
    c = Client(addr, handshake=False)
    c.send(raw.encode() if isinstance(raw, str) else raw)
    status, headers = c.read_http()
    c.expect_eof()
    return status, headers


for name, raw, want in [
    ("POST", request().replace("GET", "POST", 1), 400),
    ("HTTP/1.0", request().replace("HTTP/1.1", "HTTP/1.0", 1), 400),
    ("no Host", request(Host=None), 400),
    ("no Upgrade", request(Upgrade=None), 426),
    ("Upgrade: h2c", request(Upgrade="h2c"), 426),
    ("no Connection", request(Connection=None), 400),
    ("version 8", request(Sec_WebSocket_Version="8"), 426),
    ("no key", request(Sec_WebSocket_Key=None), 400),
    ("short key", request(Sec_WebSocket_Key="abc"), 400),
    # A plain GET of a path that is no static page (an application may serve one at "/").
    ("plain GET", "GET /no-such-page HTTP/1.1\r\nHost: x\r\n\r\n", 426),
    ("plain GET, keep-alive", "GET /no-such-page HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", 426),
    ("header too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + "a" * 9000 + "\r\n\r\n", 431),
    ("garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + "\x00" * 40 + "\r\n\r\n", 400),
    # Request targets that used to get 101 and reach the application (and its logs).
    ("target /NUL", request("/\x00"), 400),
    ("target /\\x01\\x7f\\xff", request("/\x01\x7f").encode().replace(b"\x7f", b"\x7f\xff"), 400),
    ("target with a bare CR", request("/a\rb"), 400),
    ("target with a tab", request("/a\tb"), 400),
    ("target abc", request("abc"), 400),
    ("target *", request("*"), 400),
    ("absolute target", request("http://host/chat"), 400),
    ("Content-Length", request(Content_Length="0"), 400),
    ("Transfer-Encoding", request(Transfer_Encoding="chunked"), 400),
    ("malformed Sec-WebSocket-Extensions", request(Sec_WebSocket_Extensions="a;;=b"), 400),
]:
    def _hs(addr, raw=raw, want=want):
        status, headers = http_status(addr, raw)
        assert status == want, f"status {status}, expected {want}"
        if want == 426:
            assert "Sec-WebSocket-Version: 13" in headers, headers
    case(f"handshake: {name} -> {want}")(_hs)


@case("handshake: /healthz answers 200")
def _(addr):
    status, _ = http_status(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200


@case("handshake: request chopped into 1-byte writes, frame pipelined after it")
def _(addr):
    c = Client(addr, handshake=False)
    c.send(request().encode(), chop=1)
    status, headers = c.read_http()
    assert status == 101 and "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in headers, headers
    c.send(build_frame(1, b"after"))
    c.expect(1, b"after")


@case("handshake: frame in the same write as the request")
def _(addr):
    c = Client(addr, handshake=False)
    c.send(request().encode() + build_frame(1, b"pipelined"))
    status, _ = c.read_http()
    assert status == 101
    c.expect(1, b"pipelined")


# ---------------------------------------------------------------- 14 backpressure
@case("backpressure: a client that sends 48 MiB before reading gets every byte back")
def _(addr):
    if CLIENT_SSL:
        # This client writes from one thread while it reads from another; an SSLSocket (one
        # OpenSSL object) must not be used that way. The server side is the same over TLS.
        return
    c = Client(addr)
    msgs = [os.urandom(64 << 10) for _ in range(16)]
    count = 48 * 16  # 768 messages of 64 KiB
    errors = []

    def writer():
        try:
            for i in range(count):
                c.frame(2, msgs[i % 16], key=b"\x01\x02\x03\x04")
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(1.0)  # the server's output backs up; it must stop reading, not drop or grow
    for i in range(count):
        c.expect(2, msgs[i % 16])
    t.join()
    assert not errors, errors


# ---------------------------------------------------------------- timers (second server)
TIMER_CASES = []


def timer_case(name):
    def register(fn):
        TIMER_CASES.append((name, fn))
        return fn
    return register


@timer_case("timers: silent client dropped at the handshake deadline")
def _(addr):
    c = Client(addr, handshake=False)
    t = time.time()
    c.expect_eof()
    assert time.time() - t < 3, "handshake deadline not enforced"


@timer_case("timers: idle connection gets a ping; no pong closes it with 1011")
def _(addr):
    c = Client(addr)
    fin, rsv, op, payload = c.read_frame()
    assert op == 9, f"expected a ping, got opcode {op}"
    t = time.time()
    c.expect_close(1011, answer=False)  # a Close saying why, then the FIN
    assert time.time() - t < 3


@timer_case("timers: a client that answers pings stays connected")
def _(addr):
    c = Client(addr)
    end = time.time() + 1.5
    while time.time() < end:
        fin, rsv, op, payload = c.read_frame()
        assert op == 9
        c.frame(10, payload)
    c.frame(1, b"alive")
    while True:
        fin, rsv, op, payload = c.read_frame()
        if op == 1:
            assert payload == b"alive"
            break


def run(cases, addr, only):
    passed = failed = 0
    for name, fn in cases:
        if only and only not in name:
            continue
        t = time.time()
        try:
            fn(addr)
            passed += 1
            print(f"ok    {name} ({time.time() - t:.2f}s)")
        except Exception as e:  # noqa: BLE001
            failed += 1
            print(f"FAIL  {name}: {e}")
            traceback.print_exc()
    return passed, failed


def shutdown_case(binary):
    """SIGTERM: open clients get Close 1001; one that never answers is dropped after the close
    timeout; the server exits 0. (With no drain window: tests/ops/drain_test.py checks the
    spread over one.)"""
    with start_server(binary, "--cores", "2", "--close-timeout", "500", "--drain-timeout", "0",
                      tls=TLS) as (url, proc):
        clients = [Client(host_port(url)) for _ in range(4)]
        silent = Client(host_port(url))
        t = time.time()
        proc.send_signal(signal.SIGTERM)
        for c in clients:
            c.expect_close(1001)
        fin, rsv, op, payload = silent.read_frame()
        assert op == 8 and payload[:2] == struct.pack("!H", 1001), (op, payload)
        silent.expect_eof()  # without our Close reply, after --close-timeout
        proc.wait(timeout=10)
        assert proc.returncode == 0
        assert time.time() - t < 4, f"shutdown took {time.time() - t:.1f}s"


def main():
    global TLS, CLIENT_SSL
    binary = sys.argv[1]
    only = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
    tmp = tempfile.TemporaryDirectory()
    if "--tls" in sys.argv:
        TLS = make_cert(tmp.name, "localhost")
        CLIENT_SSL = ssl.create_default_context(cafile=TLS[0])
    with start_server(binary, "--cores", "2", tls=TLS) as (url, proc):
        passed, failed = run(CASES, host_port(url), only)
    if failed:
        print("server log:\n" + proc.log)  # its counters say what it saw
    with start_server(binary, "--cores", "1", "--handshake-timeout", "500", "--ping-interval", "300",
                      "--close-timeout", "500", tls=TLS) as (url, _):
        p, f = run(TIMER_CASES, host_port(url), only)
        passed, failed = passed + p, failed + f
    if not only or only in "shutdown":
        p, f = run([("shutdown: SIGTERM sends 1001, drops a silent client after the close timeout, exits 0", shutdown_case)], binary, None)
        passed, failed = passed + p, failed + f
    print(f"conformance ({'wss' if TLS else 'ws'}): {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
