#!/usr/bin/env python3
"""Echo backend for wsedge: every message goes back to its sender, text as text, binary as
binary.

usage: python3 python/examples/echo.py [ENDPOINT]     (default tcp://127.0.0.1:7001)
then:  wsedge ... --backend tcp://127.0.0.1:7001
"""
import logging
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wsedge_backend import Backend  # noqa: E402


def main() -> None:
    endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:7001"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    b = Backend(endpoint, name="echo")

    @b.on_open
    def opened(conn):
        logging.info("open %s %s from %s", conn.id, conn.path, conn.peer)

    @b.on_message
    def message(conn, data, binary):
        b.send(conn, data, binary=binary)

    @b.on_close
    def closed(conn, code, reason, by):
        logging.info("close %s %d %r by %s", conn.id, code, reason, by)

    signal.signal(signal.SIGTERM, lambda *_: b.stop())
    with b:
        b.run()


if __name__ == "__main__":
    main()
