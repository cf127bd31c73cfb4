"""The fixed cost of a core's receive ring stays small under many idle connections (issue 14).

Each handshake is read into the provided-buffer ring. With one whole 16 KiB buffer per read
(the ring without IOU_PBUF_RING_INC), 2,000 handshakes touch 2,000 buffers' first pages: 8 MiB
that stays resident, over 4 KiB per connection. Consumed incrementally, the reads share
buffers and touch about their own bytes. This test opens 2,000 plain ws connections against a
one-core server, keeps them idle, and bounds the RSS they added per connection and the idle
server's RSS; the bounds leave room for what a connection itself costs (its slot, TCP state
the kernel keeps outside our RSS) and for the libraries' own pages.

usage: idle_rss_test.py PATH_TO_WSEDGE
"""
import os
import re
import resource
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from wsedge_server import admin_url, host_port, start_server  # noqa: E402
from raw_ws import REQUEST, check, read_upgrade, results  # noqa: E402

KiB = 1 << 10
MiB = 1 << 20
CONNECTIONS = 2000
# Measured on 6.18 (2026-11-30), release build: 645 B per connection consumed incrementally,
# 4,450 B with whole buffers; the idle server 11.2 MiB, 12.5 MiB after the connections. The issue
# asks 16 MiB per core; the bound leaves 4 MiB for other builds and libraries.
PER_CONNECTION = 2 * KiB
IDLE_RSS = 20 * MiB


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) * KiB


def sanitized(pid):
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def handshake_all(addr, n):
    """n upgraded connections: every request goes out first, then every 101 is read."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(addr, timeout=10)
        s.sendall(REQUEST)
        socks.append(s)
    for s in socks:
        read_upgrade(s)
    return socks


def gauge(admin, name):
    with urllib.request.urlopen(admin + "/metrics", timeout=10) as r:
        m = re.search(rf"^wsedge_{name}(?:{{[^}}]*}})? (\S+)$", r.read().decode(), re.M)
    return float(m.group(1)) if m else None


def measure(binary, *flags):
    with start_server(binary, "--cores", "1", *flags) as (url, proc):
        admin = admin_url(proc)
        time.sleep(0.2)
        base = rss(proc.pid)
        socks = handshake_all(host_port(url), CONNECTIONS)
        time.sleep(0.5)
        after = rss(proc.pid)
        incremental = gauge(admin, "recv_ring_incremental")
        grown = gauge(admin, "recv_ring_grown_total")
        asan = sanitized(proc.pid) and "AddressSanitizer build: RSS counts its shadow memory"
        for s in socks:
            s.close()
    per_conn = (after - base) / CONNECTIONS
    print(f"      {' '.join(flags) or 'defaults'}: idle {base / MiB:.1f} MiB -> {after / MiB:.1f} MiB "
          f"after {CONNECTIONS} connections ({per_conn:.0f} B each); incremental={incremental}")
    return base, after, per_conn, incremental, grown, asan


def main():
    binary = sys.argv[1]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, CONNECTIONS + 256)), hard))

    base, after, per_conn, incremental, grown, asan = measure(binary)
    check("recv_ring_incremental is exported as 0 or 1", incremental in (0.0, 1.0), f"{incremental}")
    if incremental == 1.0:
        check(f"idle connections cost at most {PER_CONNECTION} B of RSS each", per_conn <= PER_CONNECTION,
              f"{per_conn:.0f} B per connection", skip=asan)
        check(f"the idle server stays under {IDLE_RSS // MiB} MiB", after <= IDLE_RSS,
              f"{after / MiB:.1f} MiB", skip=asan)
        # Small reads packed into shared buffers never run the initial ring dry: growing it here
        # would make idle servers pay for a burst that never came.
        check("handshakes alone do not grow the receive ring", grown == 0.0, f"{grown} growths")

    # Forced off: whole buffers per read, as on a kernel before 6.12. It must still serve.
    _, _, _, off, _, _ = measure(binary, "--buf-incremental", "off")
    check("--buf-incremental off is reported as 0", off == 0.0, f"{off}")

    passed = sum(results)
    print(f"idle rss: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
