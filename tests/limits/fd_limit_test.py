"""Running out of file descriptors is logged, counted, and recovered from.

The server runs under a hard limit of 64 descriptors (prlimit). 80 clients connect at once:
the accepts past the limit fail with EMFILE. Before, those failures were neither logged nor in
the exit summary. Now a warning names the error (at most once a second), accept_errors_total
counts them, and once clients leave the server accepts again.

usage: fd_limit_test.py PATH_TO_WSEDGE
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from log_lines import events, sum_counters  # noqa: E402
from wsedge_server import host_port, start_server  # noqa: E402
from raw_ws import REQUEST, check, results  # noqa: E402


def upgraded(addr, timeout=3.0):
    """True when a WebSocket upgrade on a new connection is answered 101 within `timeout`."""
    try:
        s = socket.create_connection(addr, timeout=timeout)
        s.sendall(REQUEST)
        data = s.recv(4096)
        s.close()
        return data.startswith(b"HTTP/1.1 101")
    except OSError:
        return False


def main():
    binary = sys.argv[1]
    with start_server(binary, "--cores", "1", prefix=("prlimit", "--nofile=64:64")) as (url, proc):
        addr = host_port(url)
        held = []
        for _ in range(80):  # the kernel completes these from the backlog; accept() fails past 64
            held.append(socket.create_connection(addr, timeout=5))
        time.sleep(0.5)
        for s in held:
            s.close()
        deadline = time.time() + 5
        recovered = False
        while time.time() < deadline and not recovered:
            recovered = upgraded(addr, timeout=1.0)
        check("the server accepts again once clients have left", recovered)
    log = proc.log
    errors = sum_counters(log, "accept_errors_total", "core_stopped").get("accept_errors_total", 0)
    warnings = len(list(events(log, "accept_failed")))
    check("accept failures are counted in the exit summary", errors >= 1, log[-600:])
    check("and logged, at most about once a second", 1 <= warnings <= 3,
          f"{warnings} warnings for {errors} failures")
    check("the log names the error", "Too many open files" in log, log[-600:])
    passed = sum(results)
    print(f"fd limit: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
