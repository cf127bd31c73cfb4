"""Memory held for clients stays bounded, and comes back after a burst.

50 clients each send most of a fragmented 15 MiB message and never finish it. Before the
per-core assembly budget the server reached 1 GiB RSS; before the pool's watermark 260 MB
stayed resident after every client had left. Now the clients past --max-assembly are closed
with 1009 (and counted), peak RSS stays near the budget, and RSS falls back once they are
gone. Also: a message in more fragments than --max-fragments closes with 1009.

usage: memory_test.py PATH_TO_WSEDGE
"""
import os
import re
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from log_lines import sum_counters  # noqa: E402
from wsedge_server import host_port, start_server  # noqa: E402
from raw_ws import check, frame, results, ws_connect  # noqa: E402

MiB = 1 << 20
BUDGET = 128 * MiB
CLIENTS = 50
FRAGMENT = 1 * MiB
FRAGMENTS = 15
# What may stay after the burst: the touched receive ring (16 MiB here), the pool's watermark
# of free buffers (64 MiB) and some slack.
SETTLED = 16 * MiB + 64 * MiB + 24 * MiB


def rss(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) * 1024


def sanitized(pid):
    """An AddressSanitizer build keeps freed memory in its quarantine on purpose, and RSS counts
    its shadow memory: RSS says nothing about our allocations there."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def connect(addr):
    return ws_connect(addr)[0]


def close_code(sock, within=10.0):
    """The code of the server's Close, or None if the connection ended without one."""
    sock.settimeout(within)
    buf = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            if len(buf) >= 4 and buf[0] & 0x0F == 8:
                return struct.unpack("!H", buf[2:4])[0]
    except OSError:
        pass
    return None


def burst(addr, pid):
    socks = [connect(addr) for _ in range(CLIENTS)]
    codes = [None] * CLIENTS
    chunk = b"x" * FRAGMENT
    first = frame(2, chunk, fin=False)
    more = frame(0, chunk, fin=False)

    def feed(i):
        s = socks[i]
        try:
            s.sendall(first)
            for _ in range(FRAGMENTS - 1):
                s.sendall(more)
        except OSError:  # refused mid-way: the server closed with 1009 and stopped reading
            codes[i] = close_code(s)

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)  # the server reads what is still in flight
    for i, s in enumerate(socks):
        if codes[i] is None:
            s.setblocking(False)
            try:
                data = s.recv(65536)
                if data and data[0] & 0x0F == 8:
                    codes[i] = struct.unpack("!H", data[2:4])[0]
            except BlockingIOError:
                pass
            s.setblocking(True)
    peak = rss(pid, "VmHWM")
    for s in socks:
        s.close()
    return codes, peak


def main():
    binary = sys.argv[1]
    # A 16 MiB receive ring: once a burst has touched it, it stays (a fixed cost per core).
    with start_server(binary, "--cores", "1", "--buf-count", "1024", "--max-assembly", str(BUDGET),
                      "--max-fragments", "1000") as (url, proc):
        addr = host_port(url)
        time.sleep(0.2)
        base = rss(proc.pid)
        codes, peak = burst(addr, proc.pid)
        refused = sum(1 for c in codes if c == 1009)
        check("clients past the assembly budget are closed with 1009", refused >= CLIENTS // 2,
              f"{refused} of {CLIENTS} got 1009: {codes}")
        asan = sanitized(proc.pid) and "AddressSanitizer build: RSS counts its quarantine"
        # What the budget admits, plus the receive buffers and the pool's 64 MiB watermark.
        check("peak RSS stays near the budget", peak - base <= BUDGET + 160 * MiB,
              f"grew {(peak - base) / MiB:.0f} MiB for a {BUDGET / MiB:.0f} MiB budget", skip=asan)
        after = rss(proc.pid)
        deadline = time.time() + 10
        while time.time() < deadline and not asan:
            after = rss(proc.pid)
            if after - base <= SETTLED:
                break
            time.sleep(0.2)
        print(f"      idle {base / MiB:.0f} MiB; peak +{(peak - base) / MiB:.0f} MiB; "
              f"+{(after - base) / MiB:.0f} MiB after the burst; {refused} of {CLIENTS} refused")
        check("RSS comes back down after the burst", after - base <= SETTLED,
              f"{(after - base) / MiB:.0f} MiB above the idle server, peak {(peak - base) / MiB:.0f}",
              skip=asan)

        # 1001 fragments of one byte: one more than --max-fragments allows.
        s = connect(addr)
        s.sendall(frame(2, b"a", fin=False) + frame(0, b"b", fin=False) * 1000 + frame(0, b"c", fin=True))
        check("a message in more fragments than --max-fragments -> 1009", close_code(s) == 1009)
        s.close()
    log = proc.log
    counted = sum_counters(log, "assembly_refused_total", "core_stopped").get("assembly_refused_total", 0)
    check("the refusals are counted", counted == refused, f"assembly_refused_total={counted}, refused {refused}")
    passed = sum(results)
    print(f"memory limits: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
