"""Listening addresses of the real binary: --listen repeats (IPv4 and IPv6 served together), and
a port another wsedge already serves is refused unless --reuse-port asks to share it.

usage: listen_test.py PATH_TO_WSEDGE
"""
import asyncio
import os
import select
import signal
import subprocess
import sys
import time

import websockets

RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'}  {name}{'' if ok else ': ' + detail}", flush=True)


class Wsedge:
    """One wsedge process; reads its stdout without ever blocking past a deadline."""

    def __init__(self, binary, *flags):
        # Two cores where there are two, so each core's listener on each address is exercised.
        cores = str(min(2, len(os.sched_getaffinity(0))))
        self.proc = subprocess.Popen([binary, "--app", "echo", "--plain", "--cores", cores, *flags], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0)
        self.pending = b""

    def lines(self, count, timeout=10):
        """Up to `count` stdout lines, fewer if the process exits or `timeout` seconds pass."""
        out = []
        end = time.monotonic() + timeout
        while len(out) < count:
            if b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                out.append(line.decode())
                continue
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                break
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            self.pending += chunk
        return out

    def urls(self, count):
        return [line.split()[2] for line in self.lines(count) if line.startswith("listening on ")]

    def exit_code(self, timeout=10):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM, then the exit code (None if it had to be killed) and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.exit_code(20)
        if code is None:
            self.proc.kill()
            self.proc.wait()
        return code, self.proc.stderr.read().decode()


async def echoes(url):
    async with websockets.connect(url, compression=None, open_timeout=5, close_timeout=5) as ws:
        await ws.send("hello over " + url)
        return await asyncio.wait_for(ws.recv(), 5) == "hello over " + url


def echo_over(url):
    try:
        return asyncio.run(echoes(url))
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
        return False


def ipv4_and_ipv6_together(binary):
    server = Wsedge(binary, "--listen", "127.0.0.1:0", "--listen", "[::1]:0")
    try:
        urls = server.urls(2)
        check("one 'listening on' line per --listen", len(urls) == 2, f"got {urls}")
        check("first line is the first --listen", bool(urls) and urls[0].startswith("ws://127.0.0.1:"), f"{urls}")
        check("second line is the IPv6 one", len(urls) == 2 and urls[1].startswith("ws://[::1]:"), f"{urls}")
        check("port 0 resolved per address", all(not u.endswith(":0") for u in urls), f"{urls}")
        for url in urls:
            check(f"echo over {url.split('//')[1].rsplit(':', 1)[0]}", echo_over(url))
    finally:
        code, log = server.stop()
        check("two-address server stops cleanly", code == 0, f"exit {code}: {log[-300:]}")


def second_server_on_the_same_port(binary):
    first = Wsedge(binary, "--listen", "127.0.0.1:0")
    try:
        urls = first.urls(1)
        check("first server starts", len(urls) == 1, f"{urls}")
        if not urls:
            return
        addr = urls[0].split("//")[1]

        second = Wsedge(binary, "--listen", addr)
        code = second.exit_code()
        _, err = second.stop()
        check("second server on a served port exits non-zero", code not in (None, 0), f"exit {code}")
        check("its error says 'address in use' and names the address",
              "address in use" in err and addr in err, f"stderr {err[-300:]!r}")
        check("the first server still echoes", echo_over(urls[0]))

        shared = Wsedge(binary, "--listen", addr, "--reuse-port")
        try:
            check("--reuse-port shares the port on purpose", shared.urls(1) == [urls[0]],
                  f"exit {shared.proc.poll()}")
        finally:
            code, log = shared.stop()
            check("the sharing server stops cleanly", code == 0, f"exit {code}: {log[-300:]}")
    finally:
        code, log = first.stop()
        check("first server stops cleanly", code == 0, f"exit {code}: {log[-300:]}")


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ipv4_and_ipv6_together(argv[1])
    second_server_on_the_same_port(argv[1])
    failed = RESULTS.count(False)
    print(f"listen: {len(RESULTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
