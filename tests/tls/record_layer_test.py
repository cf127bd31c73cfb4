"""wss:// over our own TLS 1.3 record layer (docs/TLS-RECORD.md) against real clients.

After a TLS 1.3 handshake wsedge frees OpenSSL's SSL object and seals and opens records itself
(--tls-record-layer own, the default). This suite checks it with clients that are not ours:
openssl s_client for every TLS 1.3 suite, with KeyUpdates both ways through its k/K commands
(one in the middle of a long message); Python's ssl for a long transfer, TLS 1.2 (which keeps
OpenSSL's layer), a tampered record (answered with an alert, counted) and half-close; the
counters; --tls-record-layer openssl; and what an idle wss connection costs with each layer.
(Node ws and Chromium use it in the interop and browser-chat suites.)

usage: record_layer_test.py PATH_TO_WSEDGE
"""
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))
import conformance  # noqa: E402  (its raw WebSocket client)
from log_lines import sum_counters  # noqa: E402
from wsedge_server import host_port, make_cert, start_server  # noqa: E402

RESULTS = []
SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
# An all-zero mask leaves the payload as it is on the wire: s_client takes a read of its stdin
# that starts with Q, R, K or k for a command, and a random mask could make one.
NO_MASK = b"\0\0\0\0"


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'}  {name}{'' if ok else ': ' + str(detail)[-400:]}", flush=True)


def counters(log):
    return sum_counters(log, r"tls_\w+", "core_stopped")


class SClient:
    """openssl s_client as an interactive wss client: its stdin carries the upgrade request and
    frames, or a k/K line (KeyUpdate, not requested / requested); its stdout the answers."""

    def __init__(self, port, *args):
        self.p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", *args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = b""

    def send(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()
        time.sleep(0.2)  # one read of s_client's stdin per piece: a command must start one

    def until(self, token, within=10.0):
        deadline = time.time() + within
        while token not in self.out and time.time() < deadline:
            ready, _, _ = select.select([self.p.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.p.stdout.fileno(), 1 << 20)
                if not chunk:
                    break
                self.out += chunk
        return token in self.out

    def upgrade(self):
        self.send(conformance.request().encode())
        return self.until(b"\r\n\r\n") and b"101 Switching Protocols" in self.out

    def echo(self, text):
        self.send(conformance.build_frame(1, text, key=NO_MASK))
        return self.until(text)

    def quit(self):
        self.send(b"Q\n")
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def s_client_key_updates(port):
    """Every suite: echo, then a KeyUpdate the client requests we answer (s_client -msg shows
    ours arrive), then one it does not request; echo after each, so both sides' new keys work."""
    for suite in SUITES:
        c = SClient(port, "-ciphersuites", suite, "-msg")
        try:
            check(f"{suite}: s_client upgrades", c.upgrade(), c.out)
            check(f"{suite}: echo", c.echo(b"before any update"), c.out)
            ours = c.out.count(b"<<< TLS 1.3, Handshake [length 0005], KeyUpdate")
            c.send(b"K\n")
            check(f"{suite}: echo after a requested KeyUpdate", c.echo(b"after K"), c.out)
            answered = c.out.count(b"<<< TLS 1.3, Handshake [length 0005], KeyUpdate") - ours
            check(f"{suite}: the requested KeyUpdate is answered with ours", answered == 1, c.out)
            c.send(b"k\n")
            check(f"{suite}: echo after an unrequested KeyUpdate", c.echo(b"after k"), c.out)
            check(f"{suite}: an unrequested KeyUpdate is not answered",
                  c.out.count(b"<<< TLS 1.3, Handshake [length 0005], KeyUpdate") - ours == 1, c.out)
        finally:
            c.quit()


def s_client_long_message_across_updates(port):
    """A 200,000-byte message whose pieces straddle a requested KeyUpdate and an unrequested one:
    the record stream changes keys in the middle of the message, and the echo (sent after our
    answering KeyUpdate) arrives whole."""
    payload = b"x" * 200000
    frame = conformance.build_frame(2, payload, key=NO_MASK)
    c = SClient(port)
    try:
        check("long message: s_client upgrades", c.upgrade(), c.out)
        third = len(frame) // 3
        c.send(frame[:third])
        c.send(b"K\n")
        c.send(frame[third:2 * third])
        c.send(b"k\n")
        c.send(frame[2 * third:])
        check("a 200,000-byte message across two KeyUpdates is echoed whole",
              c.until(payload, within=20), f"{len(c.out)} bytes received")
    finally:
        c.quit()


def python_client(addr, cert, version=ssl.TLSVersion.TLSv1_3):
    ctx = ssl.create_default_context(cafile=cert)
    ctx.maximum_version = version
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    conformance.CLIENT_SSL = ctx
    try:
        return conformance.Client(addr)
    finally:
        conformance.CLIENT_SSL = None


def python_ssl(addr, cert):
    """Python's ssl: a 4 MiB message in many records both ways; TLS 1.2 beside it."""
    c = python_client(addr, cert)
    big = os.urandom(4 << 20)
    c.frame(2, big, key=os.urandom(4))
    try:
        c.expect(2, big)
        check("Python ssl: a 4 MiB message is echoed", True)
    except (AssertionError, EOFError, OSError) as e:
        check("Python ssl: a 4 MiB message is echoed", False, e)
    check("Python ssl negotiated TLS 1.3", c.sock.version() == "TLSv1.3", c.sock.version())
    c.frame(8, conformance.close_payload(1000))
    c.expect_close(1000, answer=False)
    old = python_client(addr, cert, ssl.TLSVersion.TLSv1_2)
    check("TLS 1.2 is served (by OpenSSL's record layer)", old.sock.version() == "TLSv1.2", old.sock.version())
    old.frame(1, b"over TLS 1.2")
    old.expect(1, b"over TLS 1.2")
    old.close()


def handshake_in_memory(addr, cert):
    """Python's ssl over memory BIOs, handshaken up to (not including) sending the client's
    Finished, so a test decides what goes out with it: (tls, inc, out, sock, deadline)."""
    ctx = ssl.create_default_context(cafile=cert)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    sock = socket.create_connection(addr, timeout=5)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if out.pending:
                sock.sendall(out.read())
            inc.write(sock.recv(65536))
    return tls, inc, out, sock, deadline


def tampered_record(addr, cert):
    """A record whose tag does not verify: the server answers with a bad_record_mac alert under
    its key (Python's ssl reads it) and closes; the failure is counted."""
    tls, inc, out, sock, deadline = handshake_in_memory(addr, cert)
    if out.pending:
        sock.sendall(out.read())
    time.sleep(0.2)  # the server's ticket has arrived, and its handover is done
    sock.sendall(bytes([23, 3, 3, 0, 32]) + os.urandom(32))  # application data nobody sealed
    got = b""
    try:
        while time.time() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    sock.close()
    inc.write(got)
    try:
        while True:
            tls.read(65536)
    except ssl.SSLError as e:
        check("a tampered record is answered with bad_record_mac", "BAD_RECORD_MAC" in str(e).upper(), e)
    else:
        check("a tampered record is answered with bad_record_mac", False, f"no alert in {got!r}")


def data_in_the_finished_flight(addr, cert):
    """The upgrade request sealed before the client's Finished is sent, so both arrive in one
    read: the server hands over between the two records and opens the request at read
    sequence 0."""
    tls, inc, out, sock, deadline = handshake_in_memory(addr, cert)
    tls.write(conformance.request().encode())
    sock.sendall(out.read())  # Finished and the request, one write
    got = b""
    try:
        while b"\r\n\r\n" not in got and time.time() < deadline:
            try:
                got += tls.read(65536)
            except ssl.SSLWantReadError:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                inc.write(chunk)
    except (ssl.SSLError, OSError) as e:
        got += repr(e).encode()
    sock.close()
    check("data in the client's Finished flight is read", b"101 Switching Protocols" in got, got)


def reload_and_drain(binary, tls, tmp):
    """--tls-record-layer switched by a config reload (SIGHUP): connections from before keep the
    layer they have, new ones take the new setting; then SIGTERM drains them all, each with a
    Close 1001 sealed by whichever layer it is on, and the server exits cleanly."""
    path = os.path.join(tmp, "layer.toml")
    with open(path, "w") as f:
        f.write('tls-record-layer = "own"\n')
    conformance.CLIENT_SSL = ssl.create_default_context(cafile=tls[0])
    try:
        with start_server(binary, "--cores", "1", "--config", path, "--drain-timeout", "200",
                          tls=tls) as (url, proc):
            addr = host_port(url)
            own = conformance.Client(addr)
            own.frame(1, b"own before")
            own.expect(1, b"own before")
            with open(path, "w") as f:
                f.write('tls-record-layer = "openssl"\n')
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            kept = conformance.Client(addr)
            for c, text in ((own, b"own after the reload"), (kept, b"openssl after the reload")):
                c.frame(1, text)
                c.expect(1, text)
            check("a layer switched by a reload: both kinds of connection echo", True)
            proc.send_signal(signal.SIGTERM)
            for name, c in (("own", own), ("openssl", kept)):
                try:
                    c.expect_close(1001)
                    check(f"drain: the {name} layer's connection gets Close 1001", True)
                except (AssertionError, EOFError, OSError) as e:
                    check(f"drain: the {name} layer's connection gets Close 1001", False, e)
            proc.wait(timeout=10)
    except (AssertionError, EOFError, OSError, RuntimeError) as e:
        check("reload and drain", False, e)
        return {}
    finally:
        conformance.CLIENT_SSL = None
    check("drain: the server exits cleanly", proc.returncode == 0, proc.returncode)
    return counters(proc.log)


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def sanitized(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def idle_cost(binary, tls, layer, conns=300):
    """RSS growth per idle wss connection after a warm-up of as many connections (which touches
    the receive ring and the allocator's pages), and the exit counters."""
    ctx = ssl.create_default_context(cafile=tls[0])
    # A ring of 256 receive buffers, all touched by the warm-up's reads: the default ring is
    # touched a buffer per read for thousands of handshakes, which is not this layer's cost.
    with start_server(binary, "--cores", "1", "--buf-count", "256", "--tls-record-layer", layer,
                      tls=tls) as (url, proc):
        addr = host_port(url)
        conformance.CLIENT_SSL = ctx
        try:
            for c in [conformance.Client(addr) for _ in range(conns)]:
                c.close()
            time.sleep(0.5)
            before = rss(proc.pid)
            held = [conformance.Client(addr) for _ in range(conns)]
            time.sleep(0.5)
            grown = rss(proc.pid) - before
            asan = sanitized(proc.pid)
            for c in held:
                c.close()
        finally:
            conformance.CLIENT_SSL = None
    return grown / conns, asan, counters(proc.log)


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_cert(tmp, "localhost")
        with start_server(binary, "--cores", "1", tls=(cert, key)) as (url, proc):
            addr = host_port(url)
            s_client_key_updates(addr[1])
            s_client_long_message_across_updates(addr[1])
            python_ssl(addr, cert)
            tampered_record(addr, cert)
            data_in_the_finished_flight(addr, cert)
        got = counters(proc.log)
        # s_client: 3 suites + the long message; Python: 1 + the tampered one + data in the
        # Finished flight. TLS 1.2: not.
        check("every TLS 1.3 connection was handed over, the TLS 1.2 one was not",
              got.get("tls_own_record_layer_total") == got.get("tls_handshakes_total", 0) - 1 == 7, got)
        check("the tampered record is counted", got.get("tls_errors_total") == 1, got)

        got = reload_and_drain(binary, (cert, key), tmp)
        check("after the reload, only the first connection was handed over",
              got.get("tls_own_record_layer_total") == 1 and got.get("tls_handshakes_total") == 2, got)

        own, asan, got = idle_cost(binary, (cert, key), "own")
        check("own layer: every connection handed over", got.get("tls_own_record_layer_total") == 600, got)
        openssl, _, got = idle_cost(binary, (cert, key), "openssl")
        check("--tls-record-layer openssl: none handed over", got.get("tls_own_record_layer_total") == 0, got)
        print(f"idle wss connection: {own:.0f} B with our record layer, {openssl:.0f} B with OpenSSL's")
        if asan:
            print("skip  idle memory bounds: AddressSanitizer's shadow memory and quarantine are in RSS")
        else:
            check("an idle wss connection costs at most 2 KiB on our layer", own <= 2048, f"{own:.0f} B")
            check("and OpenSSL's layer keeps far more (its SSL object)", openssl >= 4 * max(own, 1024),
                  f"{openssl:.0f} B")
    passed, failed = RESULTS.count(True), RESULTS.count(False)
    print(f"record layer: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
