"""Structured logs (docs/OPERATIONS.md §2) as an operator sees them on wsedge's stderr: every line
parses (JSON by default, logfmt on request) and carries the required keys; --log-level hides
what is below it; the access log has a line per WebSocket connection with who, where, how much
and how it ended, never a token or a query string; its rate limit counts what it suppressed;
bad log flags stop the server at start.

    logs_test.py WSEDGE_BINARY
"""
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))

import jwt  # noqa: E402
import websockets  # noqa: E402

from log_lines import events, parse_line  # noqa: E402
from wsedge_server import start_server  # noqa: E402

BINARY = None
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 30))


async def echo_session(url, path="/", messages=3, payload="hello"):
    async with websockets.connect(url + path) as ws:
        for _ in range(messages):
            await ws.send(payload)
            await ws.recv()
    # The client closed with 1000 (the context manager's close).


class LogsTest(unittest.TestCase):
    def lines(self, log):
        """Every stderr line, parsed; fails on one that is not a log line."""
        out = []
        for line in log.splitlines():
            fields = parse_line(line)
            self.assertIsNotNone(fields, f"not a log line: {line!r}")
            out.append(fields)
        return out

    def test_every_line_is_json_with_time_level_and_event(self):
        with start_server(BINARY, "--cores", "2") as (url, proc):
            run(echo_session(url))
        lines = self.lines(proc.log)
        self.assertTrue(all(proc.log.splitlines()[i].startswith("{") for i in range(len(lines))))
        for fields in lines:
            self.assertRegex(fields["ts"], RFC3339_MS)
            self.assertIn(fields["level"], ("error", "warn", "info", "debug"))
            self.assertRegex(fields["event"], r"\A[a-z][a-z0-9_]*\Z")
        names = [f["event"] for f in lines]
        self.assertIn("listening", names)
        self.assertIn("stopping", names)
        # The exit summaries come from the core threads: they say which, and keep every
        # counter under the metrics name.
        stops = [f for f in lines if f["event"] == "core_stopped"]
        self.assertEqual(sorted(f["core"] for f in stops), [0, 1])
        self.assertEqual(sum(f["messages_received_total"] for f in stops), 3)
        # The main thread's lines are from no core.
        self.assertNotIn("core", next(f for f in lines if f["event"] == "listening"))

    def test_logfmt_on_request(self):
        with start_server(BINARY, "--cores", "1", "--log-format", "logfmt") as (url, proc):
            run(echo_session(url))
        for line in proc.log.splitlines():
            self.assertTrue(line.startswith("ts="), line)
        stops = list(events(proc.log, "core_stopped"))
        self.assertEqual(len(stops), 1)
        self.assertEqual(stops[0]["level"], "info")
        self.assertEqual(stops[0]["messages_sent_total"], 3)

    def test_log_level_warn_hides_info_lines(self):
        with start_server(BINARY, "--cores", "1", "--log-level", "warn", "--access-log") as (url, proc):
            run(echo_session(url))
        lines = self.lines(proc.log)
        self.assertFalse([f for f in lines if f["level"] in ("info", "debug") and
                          f["event"] != "access"], proc.log)
        # The access log has its own switch: --access-log asked for it.
        self.assertEqual(len([f for f in lines if f["event"] == "access"]), 1)

    def test_access_log_line_of_an_echo_session(self):
        async def sessions(url):
            await echo_session(url, "/room?secret=s3cr3t&x=1", messages=3, payload="hello")
            # One the server closes (its shutdown), with the client still connected.
            ws = await websockets.connect(url + "/")
            await ws.send("abcdefgh")
            await ws.recv()
            return ws

        with start_server(BINARY, "--cores", "1", "--access-log") as (url, proc):
            loop = asyncio.new_event_loop()
            ws = loop.run_until_complete(sessions(url))
            proc.send_signal(15)
            # The client answers the server's Close while its loop runs.
            loop.run_until_complete(asyncio.wait_for(ws.wait_closed(), 10))
            loop.close()
        access = list(events(proc.log, "access"))
        self.assertEqual(len(access), 2, proc.log)
        first, second = sorted(access, key=lambda f: f["messages_in"], reverse=True)
        self.assertRegex(first["peer"], r"\A127\.0\.0\.1:\d+\Z")
        self.assertEqual(first["user"], "-")
        self.assertRegex(first["conn"], r"\A[0-9a-f]+\.[0-9a-f]+\Z")  # the echo: slot.gen
        self.assertEqual((first["messages_in"], first["bytes_in"]), (3, 15))
        self.assertEqual((first["messages_out"], first["bytes_out"]), (3, 15))
        self.assertEqual((first["close_code"], first["close_side"]), (1000, "client"))
        self.assertGreaterEqual(first["duration_ms"], 0)
        self.assertEqual(first["level"], "info")
        self.assertEqual((second["messages_in"], second["bytes_out"]), (1, 8))
        self.assertEqual((second["close_code"], second["close_side"]), (1001, "server"))
        self.assertNotIn("s3cr3t", proc.log)
        self.assertNotIn("secret=", proc.log)

    def test_access_log_names_the_user_and_route_never_the_token(self):
        with tempfile.TemporaryDirectory() as tmp:
            key = os.path.join(tmp, "hs256.key")
            secret = os.urandom(31) + b"s"  # not a trailing newline, which wsedge drops
            with open(key, "wb") as f:
                f.write(secret)
            token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 300}, secret,
                               algorithm="HS256")
            with start_server(BINARY, "--auth", "required", "--auth-hs256-secret-file", key,
                              "--access-log", "--log-level", "debug", app="bridge") as (url, proc):
                async def session():
                    async with websockets.connect(f"{url}/?token={token}") as ws:
                        await ws.send("hi")
                run(session())
        access = list(events(proc.log, "access"))
        self.assertEqual(len(access), 1, proc.log)
        self.assertEqual((access[0]["user"], access[0]["route"]), ("alice", "/"))
        # The bridge names it as backends know it: node.epoch.core.slot.gen.
        self.assertRegex(access[0]["conn"], r"\A([0-9a-f]+\.){4}[0-9a-f]+\Z")
        self.assertEqual(access[0]["messages_in"], 1)
        self.assertNotIn(token, proc.log)
        self.assertNotIn(token.split(".")[2], proc.log)
        self.assertNotIn("token=", proc.log)

    def test_access_log_rate_limit_counts_what_it_suppressed(self):
        burst = 40

        async def connections(url, n):
            for _ in range(n):
                async with websockets.connect(url + "/"):
                    pass

        with start_server(BINARY, "--cores", "1", "--access-log", "--access-log-rate", "5") as (
                url, proc):
            t0 = time.monotonic()
            run(connections(url, burst))
            took = time.monotonic() - t0
            time.sleep(1.2)  # a new window: the next line reports what was suppressed
            run(connections(url, 1))
        access = list(events(proc.log, "access"))
        suppressed = sum(f.get("suppressed", 0) for f in access)
        # Every connection is either logged or counted, and the counts reach the log.
        self.assertEqual(len(access) + suppressed, burst + 1, proc.log)
        self.assertLessEqual(len(access), 5 * (int(took) + 2) + 1)
        self.assertGreater(suppressed, 0)
        self.assertGreater(access[-1]["suppressed"], 0)

    def test_bad_log_flags_stop_the_server(self):
        for flags, says in ((["--log-level", "verbose"], "--log-level"),
                            (["--log-format", "text"], "--log-format"),
                            (["--access-log-rate", "0"], "--access-log-rate")):
            r = subprocess.run([BINARY, "--plain", "--listen", "127.0.0.1:0", *flags],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, flags)
            self.assertIn(says, r.stderr)
            self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
