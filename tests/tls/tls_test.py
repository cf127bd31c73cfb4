"""wss:// against real TLS clients: openssl s_client for protocol versions, ALPN, resumption and
SNI; Python's ssl for reloads and the error paths.

usage: tls_test.py PATH_TO_WSEDGE
"""
import os
import re
import shutil
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


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'}  {name}{'' if ok else ': ' + detail}", flush=True)


def s_client(port, *args, wait=0.3):
    """Runs openssl s_client, keeps stdin open `wait` seconds (so tickets arrive), returns output."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(wait)
    try:
        out, _ = p.communicate(input="", timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return out


def fingerprint(port, servername="localhost"):
    out = s_client(port, "-servername", servername, "-showcerts")
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    if not pem:
        return None
    fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=pem.group(0),
                        capture_output=True, text=True)
    return fp.stdout.strip()


def echo_once(client, text):
    client.frame(1, text.encode())
    client.expect(1, text.encode())


def versions_alpn_resumption(port, tmp):
    for flag in ("-tls1", "-tls1_1"):
        out = s_client(port, flag, "-cipher", "DEFAULT@SECLEVEL=0")
        check(f"{flag} refused", "Cipher is (NONE)" in out or "alert protocol version" in out, out[-300:])
    for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        out = s_client(port, flag)
        check(f"{flag} accepted", f"New, {name}" in out, out[-300:])
    out = s_client(port, "-alpn", "http/1.1")
    check("ALPN http/1.1 answered", "ALPN protocol: http/1.1" in out, out[-300:])
    out = s_client(port, "-alpn", "h2")
    check("ALPN without http/1.1 refused", "Cipher is (NONE)" in out or "no application protocol" in out, out[-300:])
    for flag, name in (("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")):
        sess = os.path.join(tmp, f"session{flag}")
        s_client(port, flag, "-sess_out", sess, wait=0.6)
        out = s_client(port, flag, "-sess_in", sess)
        check(f"session resumption {name}", f"Reused, {name}" in out, out[-300:])


def sni(binary, tmp):
    a = make_cert(tmp, "a.test")
    b = make_cert(tmp, "b.test", key_type="rsa")
    with start_server(binary, "--cores", "1", "--tls-cert", b[0], "--tls-key", b[1], tls=a) as (url, proc):
        port = host_port(url)[1]
        out_a = s_client(port, "-servername", "a.test")
        out_b = s_client(port, "-servername", "b.test")
        out_none = s_client(port, "-noservername")
        check("SNI a.test -> ECDSA certificate for a.test", "CN = a.test" in out_a, out_a[-300:])
        check("SNI b.test -> RSA certificate for b.test", "CN = b.test" in out_b, out_b[-300:])
        check("no SNI -> the first certificate", "CN = a.test" in out_none, out_none[-300:])
        # Accepted before a reload, its ClientHello after: the SNI callback of the replaced
        # context must still find the certificates (it read the freed context before).
        early = socket.create_connection(("127.0.0.1", port), timeout=5)
        time.sleep(0.2)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        ctx = ssl.create_default_context(cafile=b[0])
        try:
            with ctx.wrap_socket(early, server_hostname="b.test") as tls:
                name = dict(x[0] for x in tls.getpeercert()["subject"]).get("commonName")
        except (ssl.SSLError, OSError) as e:
            name = repr(e)
        check("a ClientHello after a reload gets its SNI certificate", name == "b.test", name)
        out_b = s_client(port, "-servername", "b.test")
        check("and the server still serves", "CN = b.test" in out_b, out_b[-300:])


def counter(log, name):
    """Sums a counter over the per-core summary lines the server logs when it stops."""
    return sum_counters(log, name, "core_stopped").get(name, 0)


def closed_soon(addr, payload, within=3.0):
    """Sends `payload` raw; True when the server closes within `within` s without an HTTP answer."""
    s = socket.create_connection(addr, timeout=within + 2)
    s.sendall(payload)
    t = time.time()
    got = b""
    try:
        while chunk := s.recv(4096):
            got += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return time.time() - t < within and b"HTTP/1.1" not in got


def reload_and_errors(binary, tmp):
    cert, key = make_cert(tmp, "localhost")
    os.makedirs(os.path.join(tmp, "new"))
    new_cert, new_key = make_cert(os.path.join(tmp, "new"), "localhost")
    live_cert, live_key = os.path.join(tmp, "live.crt"), os.path.join(tmp, "live.key")
    shutil.copy(cert, live_cert)
    shutil.copy(key, live_key)
    bundle = os.path.join(tmp, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(open(cert).read() + open(new_cert).read())
    conformance.CLIENT_SSL = ssl.create_default_context(cafile=bundle)
    with start_server(binary, "--cores", "2", "--handshake-timeout", "500", tls=(live_cert, live_key)) as (url, proc):
        addr = host_port(url)
        old = conformance.Client(addr)
        echo_once(old, "before reload")
        before = fingerprint(addr[1])

        shutil.copy(new_cert, live_cert)
        shutil.copy(new_key, live_key)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        after = fingerprint(addr[1])
        check("SIGHUP picks up the new certificate", before and after and before != after, f"{before} / {after}")
        echo_once(old, "old connection still echoes")
        check("a connection from before the reload keeps echoing", True)

        with open(live_cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        check("a bad certificate is refused; the last good one keeps serving", fingerprint(addr[1]) == after)
        echo_once(conformance.Client(addr), "new connection after a refused reload")
        echo_once(old, "and the old one")
        check("new and old connections echo after a refused reload", True)

        check("plain HTTP on the TLS port is closed", closed_soon(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        check("a garbage ClientHello is closed", closed_soon(addr, b"\x16\x03\x01\x00\x05garbage-not-a-client-hello"))
        check("a client stopping mid-handshake is dropped at the deadline",
              closed_soon(addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"))
        abrupt = conformance.Client(addr)
        echo_once(abrupt, "about to vanish")
        abrupt.sock.close()  # no close_notify, no Close frame
        time.sleep(0.3)
        echo_once(old, "still serving after the abrupt client")
        check("a client closing without close_notify is cleaned up", True)
        old.frame(8, conformance.close_payload(1000))
        old.expect_close(1000, answer=False)
    check("TLS failures are counted (plain HTTP and garbage at least)", counter(proc.log, "tls_errors_total") >= 2, proc.log[-400:])
    check("the abrupt client is counted as an abnormal close", counter(proc.log, "abnormal_closes_total") >= 1, proc.log[-400:])
    check("the silent half-handshake is counted as a timeout", counter(proc.log, "handshake_timeouts_total") >= 1
          or counter(proc.log, "tls_errors_total") >= 3, proc.log[-400:])


def close_notify_half_close(addr, cert):
    """A client that sends a message and then its close_notify (TLS's half-close: it may still
    read, RFC 8446 §6.1) gets the echo, then the server's close_notify. Before, close_notify
    aborted the connection and the queued echo was dropped."""
    ctx = ssl.create_default_context(cafile=cert)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    sock = socket.create_connection(addr, timeout=5)
    deadline = time.time() + 10

    def pump():
        """Sends what TLS wrote; feeds what the server sent. False at EOF."""
        if out.pending:
            sock.sendall(out.read())
        data = sock.recv(65536)
        if not data:
            inc.write_eof()
            return False
        inc.write(data)
        return True

    def until(fn):
        while time.time() < deadline:
            try:
                return fn()
            except ssl.SSLWantReadError:
                if not pump():
                    return fn()
        raise AssertionError("timed out")

    until(tls.do_handshake)
    tls.write(conformance.request().encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += until(lambda: tls.read(65536))
    rest = head.split(b"\r\n\r\n", 1)[1]
    tls.write(conformance.build_frame(1, b"echo me after my close_notify"))
    try:
        tls.unwrap()  # our close_notify; the server's comes later
    except ssl.SSLWantReadError:
        pass
    sock.sendall(out.read())
    got = rest
    try:
        while time.time() < deadline:
            got += until(lambda: tls.read(65536))
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError, AssertionError):
        pass
    sock.close()
    return b"echo me after my close_notify" in got


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_cert(tmp, "localhost")
        with start_server(binary, "--cores", "1", tls=(cert, key)) as (url, _):
            versions_alpn_resumption(host_port(url)[1], tmp)
            check("a client that half-closes with close_notify still gets its echo",
                  close_notify_half_close(host_port(url), cert))
        sni(binary, tmp)
        reload_and_errors(binary, tmp)
    passed, failed = RESULTS.count(True), RESULTS.count(False)
    print(f"tls: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
