"""Slow clients, per-address limits, message rates and Origin, against the real binary.

Before these limits a client held a connection forever by trickling one byte at a time (a
100-byte frame at 1 byte/s was still open after 80 s), any Origin was accepted, and nothing
limited one address. Each check runs against a server started with SHORT deadlines given by
flags, so the test is fast; nothing asserts a speed: every wait is a bounded loop, and the
bounds are far above what the server is configured to take. Counters are read from the
per-core summary the server logs when it stops.

usage: slow_client_test.py PATH_TO_WSEDGE
"""
import os
import re
import socket
import ssl
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from log_lines import sum_counters  # noqa: E402
from wsedge_server import host_port, make_cert, start_server  # noqa: E402
from raw_ws import REQUEST, check, frame, summary  # noqa: E402


def request(origin=None):
    if origin is None:
        return REQUEST
    return REQUEST[:-2] + b"Origin: " + origin.encode() + b"\r\n\r\n"


def dial(addr):
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(addr)
    return s


def response_head(s, deadline=10.0):
    """The HTTP answer's head (up to the blank line), or what came before the server closed."""
    buf = b""
    end = time.monotonic() + deadline
    while b"\r\n\r\n" not in buf and time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\r\n\r\n")[0]


def upgrade(addr, origin=None):
    s = dial(addr)
    s.sendall(request(origin))
    head = response_head(s)
    return s, head


def status(head):
    m = re.match(rb"HTTP/1\.1 (\d{3})", head)
    return int(m.group(1)) if m else None


class FrameReader:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def _need(self, n, end):
        while len(self.buf) < n:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.s.settimeout(left)
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def next(self, timeout=10.0):
        """(opcode, payload) of the next server frame."""
        end = time.monotonic() + timeout
        self._need(2, end)
        n = self.buf[1] & 0x7F
        hl = 2 + (2 if n == 126 else 8 if n == 127 else 0)
        self._need(hl, end)
        if n == 126:
            n = struct.unpack("!H", self.buf[2:4])[0]
        elif n == 127:
            n = struct.unpack("!Q", self.buf[2:10])[0]
        self._need(hl + n, end)
        op, payload = self.buf[0] & 0x0F, self.buf[hl:hl + n]
        self.buf = self.buf[hl + n:]
        return op, payload


def close_of(payload):
    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
    return code, payload[2:].decode(errors="replace")


def closed_within(s, seconds):
    """True when the server ends the connection (FIN or reset) within `seconds`, having sent
    nothing."""
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def trickle(s, data, interval, stop_when):
    """Sends data one byte every `interval` s until stop_when(sock) says the server answered;
    returns how many bytes went out (len(data) when the server never answered)."""
    for i, b in enumerate(data):
        try:
            s.send(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            return i
        if stop_when(s, interval):
            return i + 1
    return len(data)


def readable(s, wait):
    import select
    r, _, _ = select.select([s], [], [], wait)
    return bool(r)


def counter(log, name):
    return sum_counters(log, f"{name}_total", "core_stopped").get(f"{name}_total", 0)


def deadlines(binary):
    # first byte 300 ms (handshake 5 s: the drop is the first-byte deadline's); at least
    # 200 B/s once incomplete for 500 ms, checked every 250 ms.
    flags = ["--cores", "1", "--first-byte-timeout", "300", "--handshake-timeout", "5000",
             "--min-recv-rate", "200", "--recv-rate-grace", "500", "--ping-interval", "0"]
    with start_server(binary, *flags) as (url, proc):
        addr = host_port(url)

        s = dial(addr)
        t0 = time.monotonic()
        check("a silent client is dropped, unanswered, before the handshake deadline",
              closed_within(s, 4.0), f"still open after {time.monotonic() - t0:.1f}s")
        s.close()

        s = dial(addr)
        sent = trickle(s, REQUEST, 0.1, readable)
        head = response_head(s, 5.0)
        check("a handshake at 1 byte / 100 ms gets 408",
              status(head) == 408 and sent < len(REQUEST), f"{head[:60]!r} after {sent} bytes")
        s.close()

        s = dial(addr)
        half = len(REQUEST) // 2
        s.sendall(REQUEST[:half])
        time.sleep(0.05)
        s.sendall(REQUEST[half:])
        head = response_head(s)
        check("a handshake in two pieces 50 ms apart succeeds", status(head) == 101, head[:60])
        s.close()

        s, head = upgrade(addr)
        data = frame(0x2, b"x" * 100)
        sent = trickle(s, data, 0.2, readable)
        try:
            op, payload = FrameReader(s).next(5.0)
            got = (op, *close_of(payload))
        except (EOFError, TimeoutError, ConnectionResetError) as e:
            got = repr(e)
        check("a frame at 1 byte / 200 ms gets Close 1008",
              got == (0x8, 1008, "receive too slow") and sent < len(data), f"{got} after {sent}")
        s.close()

        s, head = upgrade(addr)
        s.sendall(frame(0x2, b"y" * 100)[:30])  # header, key, some payload; then nothing
        try:
            op, payload = FrameReader(s).next(5.0)
            got = (op, *close_of(payload))
        except (EOFError, TimeoutError, ConnectionResetError) as e:
            got = repr(e)
        check("a client that stalls mid-frame gets Close 1008", got == (0x8, 1008, "receive too slow"), got)
        s.close()

        s, head = upgrade(addr)
        big = os.urandom(1 << 20)
        data = frame(0x2, big)
        for i in range(0, len(data), 32768):
            s.sendall(data[i:i + 32768])
            time.sleep(0.002)
        try:
            op, payload = FrameReader(s).next(10.0)
            ok = op == 0x2 and payload == big
        except (EOFError, TimeoutError, ConnectionResetError) as e:
            ok, op = False, repr(e)
        check("a 1 MiB message sent in chunks fast enough is echoed", ok, op)
        s.close()

        s, head = upgrade(addr)
        time.sleep(1.2)  # idle between messages, past the grace: not the rate's business
        s.sendall(frame(0x1, b"still here"))
        try:
            got = FrameReader(s).next(5.0)
        except (EOFError, TimeoutError, ConnectionResetError) as e:
            got = repr(e)
        check("idle between messages is not slow", got == (0x1, b"still here"), got)
        s.close()
    check("first_byte_timeouts counted", counter(proc.log, "first_byte_timeouts") == 1,
          counter(proc.log, "first_byte_timeouts"))
    check("no handshake timeout among them", counter(proc.log, "handshake_timeouts") == 0,
          counter(proc.log, "handshake_timeouts"))
    check("slow_recv_closes counted", counter(proc.log, "slow_recv_closes") == 3,
          counter(proc.log, "slow_recv_closes"))


def over_tls(binary):
    """Over TLS the first byte is the ClientHello: a client that completes the TLS handshake
    and then says nothing is past the first-byte deadline, and the handshake deadline drops it."""
    with tempfile.TemporaryDirectory() as tmp:
        cert = make_cert(tmp, "localhost")
        flags = ["--cores", "1", "--first-byte-timeout", "300", "--handshake-timeout", "1500"]
        with start_server(binary, *flags, tls=cert) as (url, proc):
            addr = host_port(url)
            ctx = ssl.create_default_context(cafile=cert[0])
            s = ctx.wrap_socket(dial(addr), server_hostname="localhost")
            t0 = time.monotonic()
            try:
                s.settimeout(5)
                gone = s.recv(1) == b""
            except (ConnectionResetError, ssl.SSLError, socket.timeout) as e:
                gone = not isinstance(e, socket.timeout)
            waited = time.monotonic() - t0
            check("a TLS client silent after its handshake is dropped by the handshake deadline",
                  gone and waited > 0.6, f"gone={gone} after {waited:.2f}s")
            s.close()
    check("over TLS, not a first-byte timeout", counter(proc.log, "first_byte_timeouts") == 0
          and counter(proc.log, "handshake_timeouts") == 1, proc.log[-300:])


def per_address(binary):
    with start_server(binary, "--cores", "1", "--listen", "[::1]:0",
                      "--max-connections-per-ip", "2") as (url, proc):
        v4 = host_port(url)
        v6 = host_port(proc.stdout.readline().split()[2].replace("[", "").replace("]", ""))
        held = [upgrade(v4) for _ in range(2)]
        check("two connections from one address", all(status(h) == 101 for _, h in held))
        s, head = upgrade(v4)
        check("a third gets 503 with Retry-After",
              status(head) == 503 and b"\r\nRetry-After: " in head, head)
        s.close()
        s6, head = upgrade(v6)
        check("another address (::1) still connects", status(head) == 101, head)
        held[0][0].close()
        ok = False
        for _ in range(100):  # until the server has seen the FIN
            s, head = upgrade(v4)
            s.close()
            if status(head) == 101:
                ok = True
                break
            time.sleep(0.02)
        check("a freed place is taken again", ok, head)
        for s, _ in held[1:]:
            s.close()
        s6.close()
    check("ip_conn_refused counted", counter(proc.log, "ip_conn_refused") >= 1,
          counter(proc.log, "ip_conn_refused"))

    with start_server(binary, "--cores", "1", "--handshake-rate-per-ip", "1",
                      "--handshake-burst-per-ip", "2") as (url, proc):
        addr = host_port(url)
        heads = []
        for _ in range(3):
            s, head = upgrade(addr)
            heads.append(head)
            s.close()
        check("a burst of two upgrades passes", all(status(h) == 101 for h in heads[:2]), heads[:2])
        m = re.search(rb"\r\nRetry-After: (\d+)", heads[2])
        check("the third gets 429 with Retry-After in seconds",
              status(heads[2]) == 429 and m and 1 <= int(m.group(1)) <= 2, heads[2])
    check("ip_rate_refused counted", counter(proc.log, "ip_rate_refused") == 1,
          counter(proc.log, "ip_rate_refused"))


def rates(binary):
    flags = ["--cores", "1", "--max-message-rate", "10", "--message-burst", "3",
             "--max-byte-rate", "1000", "--byte-burst", "2000"]
    with start_server(binary, *flags) as (url, proc):
        addr = host_port(url)
        s, _ = upgrade(addr)
        s.sendall(b"".join(frame(0x1, b"m%d" % i) for i in range(6)))
        r = FrameReader(s)
        got = []
        try:
            while True:
                op, payload = r.next(5.0)
                got.append((op, payload))
                if op == 0x8:
                    break
        except (EOFError, TimeoutError, ConnectionResetError) as e:
            got.append(repr(e))
        last = got[-1]
        check("messages past the burst close with 1008",
              last[0] == 0x8 and close_of(last[1]) == (1008, "message rate exceeded")
              and len(got) == 4, got)
        s.close()

        s, _ = upgrade(addr)
        s.sendall(frame(0x2, b"a" * 1500) + frame(0x2, b"b" * 1500))
        r = FrameReader(s)
        try:
            first = r.next(5.0)
            second = r.next(5.0)
        except (EOFError, TimeoutError, ConnectionResetError) as e:
            first = second = repr(e)
        check("bytes past the burst close with 1008",
              first == (0x2, b"a" * 1500) and second[0] == 0x8
              and close_of(second[1]) == (1008, "byte rate exceeded"), (first[:1], second))
        s.close()
    check("msg_rate_closes counted", counter(proc.log, "msg_rate_closes") == 1,
          counter(proc.log, "msg_rate_closes"))
    check("byte_rate_closes counted", counter(proc.log, "byte_rate_closes") == 1,
          counter(proc.log, "byte_rate_closes"))


def origins(binary):
    flags = ["--cores", "1", "--allowed-origin", "https://example.com",
             "--allowed-origin", "https://*.example.org", "--allowed-origin", "http://localhost:8080"]
    with start_server(binary, *flags) as (url, proc):
        addr = host_port(url)
        cases = [("https://evil.test", 403), ("https://example.com", 101), ("HTTPS://Example.com", 101),
                 ("https://app.example.org", 101), ("https://example.org", 403),
                 ("http://localhost:8080", 101), ("http://localhost:8081", 403), (None, 101)]
        for origin, want in cases:
            s, head = upgrade(addr, origin)
            s.close()
            check(f"Origin {origin} gets {want}", status(head) == want, head[:40])
    check("origin_refused counted", counter(proc.log, "origin_refused") == 3,
          counter(proc.log, "origin_refused"))


def main(binary):
    deadlines(binary)
    over_tls(binary)
    per_address(binary)
    rates(binary)
    origins(binary)
    return summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
