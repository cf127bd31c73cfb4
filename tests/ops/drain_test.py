"""Drain and zero-downtime replacement, against the real binary (docs/OPERATIONS.md §4).

SIGTERM: the server stops accepting, tells backends it is draining, closes every client with
1001 spread evenly over --drain-timeout, then exits; a second signal closes the rest at once.
A new server started with --reuse-port on the same port takes the new connections while the
old one drains: no client sees a refused or reset connection. That last check runs in a
network namespace of its own (unshare -rn), where it may turn on net.ipv4.tcp_migrate_req
(Linux 5.14), which moves connections queued on a stopping listener to the new one.

Nothing asserts a speed: waits are bounded loops with generous bounds; the spread check
compares where closes fall inside the window, not how fast anything ran.

usage: drain_test.py PATH_TO_WSEDGE
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
from wsedge_server import admin_url, host_port, start_server  # noqa: E402
from raw_ws import check, frame, summary, ws_connect  # noqa: E402


def read_close(s, rest, deadline):
    """Waits for the server's Close frame: (close code, monotonic time it came) or (None, t)."""
    buf = rest
    while time.monotonic() < deadline:
        if len(buf) >= 2:
            op, n = buf[0] & 0x0F, buf[1] & 0x7F
            if len(buf) >= 2 + n:
                if op == 0x8:
                    code = int.from_bytes(buf[2:4], "big") if n >= 2 else 1005
                    return code, time.monotonic()
                buf = buf[2 + n:]
                continue
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(4096)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        buf += chunk
    return None, time.monotonic()


def refused(addr):
    try:
        socket.create_connection(addr, timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def ready_status(admin):
    try:
        with urllib.request.urlopen(admin + "/readyz", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait_exit(proc, timeout):
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_spread(binary):
    window_ms, n = 3000, 30
    with start_server(binary, "--cores", "2", "--drain-timeout", str(window_ms)) as (url, proc):
        addr = host_port(url)
        clients = [ws_connect(addr) for _ in range(n)]
        times = [None] * n
        codes = [None] * n
        deadline = time.monotonic() + window_ms / 1000 + 10

        def reader(i):
            codes[i], times[i] = read_close(clients[i][0], clients[i][1], deadline)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        admin = admin_url(proc)
        check("drain: /readyz answers 200 before", ready_status(admin) == 200)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        check("drain: no new connections once SIGTERM came", refused(addr))
        check("drain: /readyz answers 503 while draining", ready_status(admin) == 503)
        check("drain: the process still runs while clients remain", proc.poll() is None)
        for t in threads:
            t.join()
        exited = wait_exit(proc, 10)
        check("drain: every client got Close 1001", all(c == 1001 for c in codes),
              f"codes {sorted(set(map(str, codes)))}")
        offsets = sorted(t - t0 for t in times)
        w = window_ms / 1000
        thirds = [sum(1 for o in offsets if k * w / 3 <= o < (k + 1) * w / 3) for k in range(3)]
        # Each core closes its clients at k * window / N: evenly, so each third of the window
        # holds about a third of them (bounds leave room for a slow machine).
        check("drain: closes spread over the whole window", all(c >= n // 6 for c in thirds),
              f"per third {thirds}, offsets {[round(o, 2) for o in offsets]}")
        check("drain: the last close near the end of the window, not after it",
              0.5 * w <= offsets[-1] <= w + 2, f"last at {offsets[-1]:.2f} s")
        check("drain: exits 0 once the clients are gone", exited and proc.returncode == 0,
              f"rc {proc.returncode}")
        for s, _ in clients:
            s.close()


def test_second_signal(binary):
    with start_server(binary, "--drain-timeout", "600000") as (url, proc):
        addr = host_port(url)
        clients = [ws_connect(addr) for _ in range(6)]
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        codes = [read_close(s, rest, deadline)[0] for s, rest in clients]
        check("drain: a second signal closes the rest at once, with 1001",
              all(c == 1001 for c in codes), f"codes {codes}")
        check("drain: and the process exits", wait_exit(proc, 10) and proc.returncode == 0,
              f"rc {proc.returncode}")
        for s, _ in clients:
            s.close()


def test_backends_told(binary):
    from wsedge_backend import Backend
    be = Backend("tcp://127.0.0.1:*", name="drain-test")
    endpoint = be.endpoint
    drains, closes = [], []
    be.on_edge_draining(lambda core, ms: drains.append(ms))
    be.on_close(lambda conn, code, reason, by: closes.append((code, by)))
    stop = threading.Event()
    thread = threading.Thread(target=be.run, args=(stop,))
    thread.start()
    try:
        with start_server(binary, "--backend", endpoint, "--drain-timeout", "1000",
                          app="bridge") as (url, proc):
            addr = host_port(url)
            s, rest = ws_connect(addr)
            until = time.monotonic() + 10
            while not be.connections and time.monotonic() < until:
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            code, _ = read_close(s, rest, time.monotonic() + 10)
            s.sendall(frame(0x8, (1001).to_bytes(2, "big")))  # completes the closing handshake
            s.close()
            until = time.monotonic() + 10
            while (not drains or not closes) and time.monotonic() < until:
                time.sleep(0.02)
            check("bridge drain: the backend hears BEAT draining with the window",
                  drains and drains[0] == 1000, f"draining {drains}")
            check("bridge drain: the client closed with 1001, the backend sees its CLOSE",
                  code == 1001 and closes and closes[0][0] == 1001, f"{code} {closes}")
    finally:
        stop.set()
        thread.join(10)


# The replacement runs in its own network namespace: a fixed port there collides with nothing,
# and tcp_migrate_req may be set there without touching the host.
REPLACE_SCRIPT = r"""
import os, signal, socket, subprocess, sys, threading, time, urllib.request
sys.path.insert(0, sys.argv[2])
from raw_ws import frame, ws_connect
binary = sys.argv[1]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
with open("/proc/sys/net/ipv4/tcp_migrate_req", "w") as f:
    f.write("1")
port = 19001
def server(*extra):
    p = subprocess.Popen([binary, "--plain", "--app", "echo", "--cores", "2", "--listen",
                          f"127.0.0.1:{port}", "--drain-timeout", "1500", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("listening on"), (line, p.stderr.read())
    return p
ok = [0, 0]   # sessions that completed, while the old server ran / after it exited
errors = []
stop = threading.Event()
old_gone = threading.Event()
def session():
    s, rest = ws_connect(("127.0.0.1", port))
    try:
        s.sendall(frame(0x1, b"hello"))
        while len(rest) < 2:
            c = s.recv(4096)
            if not c:
                raise ConnectionError("closed before the echo")
            rest += c
        # An echo, or the old server's Close 1001 (draining): both are a served client.
        if rest[0] & 0x0F not in (0x1, 0x8):
            raise ConnectionError(f"unexpected frame {rest[:4]!r}")
    finally:
        s.close()
def loop():
    while not stop.is_set():
        try:
            session()
            ok[1 if old_gone.is_set() else 0] += 1
        except Exception as e:
            errors.append(repr(e))
threads = [threading.Thread(target=loop) for _ in range(4)]
old = server()
for t in threads:
    t.start()
time.sleep(0.5)
new = server("--reuse-port")
time.sleep(0.5)
old.send_signal(signal.SIGTERM)
old_rc = old.wait(timeout=30)
old_gone.set()
time.sleep(0.5)
# The admin port (the default address, the old server's until it exited) is the new one's now.
admin = "none"
for _ in range(30):
    try:
        with urllib.request.urlopen("http://127.0.0.1:9090/readyz", timeout=2) as r:
            admin = str(r.status)
        break
    except Exception as e:
        admin = type(e).__name__
        time.sleep(0.1)
stop.set()
for t in threads:
    t.join()
new.send_signal(signal.SIGINT)
new_rc = new.wait(timeout=30)
print(f"RESULT ok_before={ok[0]} ok_after={ok[1]} errors={len(errors)} old_rc={old_rc} new_rc={new_rc} admin={admin} first_errors={errors[:3]}")
"""


def test_replacement(binary):
    support = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support")
    try:
        r = subprocess.run(["unshare", "-rn", sys.executable, "-c", REPLACE_SCRIPT,
                            os.path.abspath(binary), support],
                           capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        check("replacement: unshare (util-linux) runs", False)
        return
    line = next((l for l in r.stdout.splitlines() if l.startswith("RESULT")), "")
    fields = dict(kv.split("=", 1) for kv in line.split()[1:7]) if line else {}
    check("replacement: the namespace and both servers ran", r.returncode == 0 and line,
          f"rc {r.returncode} {r.stdout[-500:]} {r.stderr[-1500:]}")
    if not fields:
        return
    check("replacement: no client saw a refused or reset connection during the swap",
          fields["errors"] == "0", line)
    check("replacement: clients were served before and after the old server left",
          int(fields["ok_before"]) > 0 and int(fields["ok_after"]) > 0, line)
    check("replacement: both servers exited 0",
          fields["old_rc"] == "0" and fields["new_rc"] == "0", line)
    check("replacement: the new server took the admin port over (/readyz 200)",
          fields["admin"] == "200", line)


def main(argv):
    binary = argv[1]
    test_spread(binary)
    test_second_signal(binary)
    test_backends_told(binary)
    test_replacement(binary)
    return summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
