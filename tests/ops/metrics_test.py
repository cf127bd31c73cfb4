"""The admin port (docs/OPERATIONS.md §1): /metrics parsed by the Prometheus client library's
own text parser, its values following traffic; /healthz and /readyz; wrong requests.

    metrics_test.py BUILD/wsedge
"""
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bridge"))

import websockets  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import bridge_test  # noqa: E402
from bridge_test import closed_with, connect, free_port, recv  # noqa: E402
from wsedge_server import admin_url, start_server  # noqa: E402
from log_lines import events  # noqa: E402

BINARY = None
WAIT = 10.0


def get(url, method="GET"):
    """(status, headers, body) of one admin request; error statuses are answers too."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def cores_up(proc):
    """The admin URL once every core serves: the listening line comes before the cores start,
    and /readyz says so ("0 of 2 cores up") until they have."""
    admin = admin_url(proc)
    deadline = time.monotonic() + WAIT
    while "cores up" in get(admin + "/readyz")[2]:
        assert time.monotonic() < deadline, "cores did not come up"
        time.sleep(0.02)
    return admin


def scrape(admin):
    """{(family name, frozenset(labels)): value} of one /metrics, checking the format."""
    status, headers, body = get(admin + "/metrics")
    assert status == 200, status
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8", headers
    samples = {}
    names = []
    for fam in text_string_to_metric_families(body):
        names.append(fam.name)
        assert fam.name.startswith("wsedge_"), fam.name
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert len(names) > 40, names
    return samples


def total(samples, name, **labels):
    """The sum over cores (and any label not given) of `name`'s samples matching `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def hs256(payload, secret):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "hs256"}).encode())
    body = b64(json.dumps(payload).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


class Metrics(unittest.TestCase):
    @contextlib.contextmanager
    def serve(self, *flags, app="echo"):
        with start_server(BINARY, "--cores", "2", *flags, app=app) as (url, proc):
            self.addCleanup(proc.stdout.close)
            self.addCleanup(proc.stderr.close)
            yield url, proc

    def run_async(self, coro):
        asyncio.run(asyncio.wait_for(coro, 60))

    def test_values_follow_traffic(self):
        with self.serve("--allowed-origin", "https://good.example") as (url, proc):
            admin = cores_up(proc)
            before = scrape(admin)
            self.assertEqual(total(before, "wsedge_connections"), 0)

            async def go():
                ws = await connect(url, "/", origin="https://good.example")
                await ws.send("hello")
                self.assertEqual(await recv(ws), "hello")
                await ws.send(b"\x00" * 1000)
                await recv(ws)
                during = await asyncio.to_thread(scrape, admin)
                self.assertEqual(total(during, "wsedge_connections"), 1)
                await ws.close(1000)
                # A second client closed by the server: its Close comes first.
                with self.assertRaises(websockets.InvalidStatusCode) as refused:
                    await connect(url, "/", origin="https://evil.example")
                self.assertEqual(refused.exception.status_code, 403)
            self.run_async(go())
            time.sleep(0.3)
            after = scrape(admin)
            self.assertEqual(total(after, "wsedge_connections"), 0)
            self.assertEqual(total(after, "wsedge_handshakes_total"), 1)
            self.assertEqual(total(after, "wsedge_messages_received_total"), 2)
            self.assertEqual(total(after, "wsedge_messages_sent_total"), 2)
            # Payload bytes exactly ("hello" and 1000 zeros), wire bytes with headers and masks.
            self.assertEqual(total(after, "wsedge_received_payload_bytes_total"), 1005)
            self.assertEqual(total(after, "wsedge_sent_payload_bytes_total"), 1005)
            self.assertGreater(total(after, "wsedge_received_bytes_total"), 1005)
            self.assertGreater(total(after, "wsedge_sent_bytes_total"), 1000)
            self.assertEqual(total(after, "wsedge_closes_total", code="1000", side="client"), 1)
            self.assertEqual(total(after, "wsedge_closes_total", side="server"), 0)
            self.assertEqual(total(after, "wsedge_upgrades_refused_total", reason="origin"), 1)
            self.assertEqual(total(after, "wsedge_handshake_duration_seconds_count"), 1)
            self.assertEqual(total(after, "wsedge_handshake_duration_seconds_bucket", le="+Inf"), 1)
            self.assertGreater(total(after, "wsedge_handshake_duration_seconds_sum"), 0)
            # Every core is labelled, and only cores 0 and 1.
            cores = {dict(ls).get("core") for (n, ls) in after if n == "wsedge_accepted_total"}
            self.assertEqual(cores, {"0", "1"})
        # The exit log still prints the same tables.
        self.assertTrue(any("handshakes_total" in e for e in events(proc.log, "core_stopped")))

    def test_server_close_is_counted_on_its_side(self):
        with self.serve("--max-message", "100") as (url, proc):
            admin = cores_up(proc)

            async def go():
                ws = await connect(url, "/")
                await ws.send("x" * 200)
                code, _, _ = await closed_with(ws)
                self.assertEqual(code, 1009)
            self.run_async(go())
            time.sleep(0.3)
            after = scrape(admin)
            self.assertEqual(total(after, "wsedge_closes_total", code="1009", side="server"), 1)
            self.assertEqual(total(after, "wsedge_too_big_total"), 1)

    def test_bridge_and_auth_families(self):
        with tempfile.TemporaryDirectory() as tmp:
            secret = os.urandom(31) + b"s"  # not a trailing newline, which wsedge drops
            key = os.path.join(tmp, "hs256.key")
            with open(key, "wb") as f:
                f.write(secret)
            with self.serve("--auth", "required", "--auth-hs256-secret-file", key,
                            app="bridge") as (url, proc):
                admin = cores_up(proc)

                async def go():
                    now = int(time.time())
                    good = hs256({"sub": "alice", "iat": now, "exp": now + 60}, secret)
                    bad = hs256({"sub": "alice", "iat": now, "exp": now + 60}, b"x" * 32)
                    for token, status in ((None, 401), (bad, 401)):
                        headers = {"Authorization": f"Bearer {token}"} if token else {}
                        with self.assertRaises(websockets.InvalidStatusCode) as e:
                            await connect(url, "/", extra_headers=headers)
                        self.assertEqual(e.exception.status_code, status)
                    ws = await connect(url, "/", extra_headers={
                        "Authorization": f"Bearer {good}"})
                    await ws.close()
                self.run_async(go())
                time.sleep(0.3)
                s = scrape(admin)
                self.assertEqual(total(s, "wsedge_auth_verifications_total", result="ok"), 1)
                self.assertEqual(total(s, "wsedge_auth_verifications_total",
                                       result="bad_signature"), 1)
                self.assertEqual(total(s, "wsedge_auth_verifications_total", result="missing"), 1)
                self.assertEqual(total(s, "wsedge_upgrades_refused_total", reason="auth"), 2)
                self.assertEqual(total(s, "wsedge_auth_tokens_by_alg_total", alg="HS256",
                                       result="ok"), 1)
                self.assertEqual(total(s, "wsedge_auth_tokens_by_alg_total", alg="HS256",
                                       result="refused"), 1)
                self.assertEqual(total(s, "wsedge_auth_tokens_by_alg_total", alg="ES256"), 0)
                # Both tokens with a key were timed, the good and the badly signed; only HS256's
                # histogram is there.
                self.assertEqual(total(s, "wsedge_auth_verify_duration_seconds_count",
                                       alg="HS256"), 2)
                self.assertEqual(total(s, "wsedge_auth_verify_duration_seconds_bucket",
                                       alg="HS256", le="+Inf"), 2)
                self.assertGreater(total(s, "wsedge_auth_verify_duration_seconds_sum",
                                         alg="HS256"), 0)
                self.assertEqual(total(s, "wsedge_auth_verify_duration_seconds_count",
                                       alg="ES256"), 0)
                self.assertEqual(total(s, "wsedge_bridge_backend_up",
                                       endpoint="inproc://wsedge-default"), 2)  # one per core
                self.assertGreaterEqual(total(s, "wsedge_bridge_messages_total", direction="up",
                                              type="open"), 1)
                self.assertGreaterEqual(total(s, "wsedge_bridge_messages_total",
                                              direction="down", type="welcome"), 2)
                self.assertIn(("wsedge_bridge_subscriptions", frozenset({("core", "0")})), s)

    def test_health_and_readiness(self):
        with self.serve() as (url, proc):
            admin = cores_up(proc)
            self.assertEqual(get(admin + "/healthz")[::2], (200, "ok\n"))
            self.assertEqual(get(admin + "/readyz")[::2], (200, "ready\n"))
            status, headers, body = get(admin + "/healthz", method="HEAD")
            self.assertEqual((status, headers["Content-Length"], body), (200, "3", ""))
            self.assertEqual(get(admin + "/nothing")[0], 404)
            self.assertEqual(get(admin + "/metrics", method="POST")[0], 405)
            host, port = admin.split("//")[1].rsplit(":", 1)
            for raw, status in ((b"NONSENSE\r\n\r\n", b"400"),
                                (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000, b"431")):
                with socket.create_connection((host, int(port)), timeout=WAIT) as s:
                    s.sendall(raw)
                    self.assertIn(b" " + status + b" ", s.recv(200))
            # The public port does not answer for it.
            status = get(url.replace("ws://", "http://").rstrip("/") + "/metrics")[0]
            self.assertNotEqual(status, 200)

    def test_readiness_waits_for_backends_when_asked(self):
        dead = f"tcp://127.0.0.1:{free_port()}"
        with self.serve("--route", f"/={dead}", "--ready-needs-backends",
                        app="bridge") as (url, proc):
            admin = cores_up(proc)
            status, _, body = get(admin + "/readyz")
            self.assertEqual(status, 503)
            self.assertIn("without a backend up", body)
            self.assertEqual(get(admin + "/healthz")[0], 200)
            s = scrape(admin)
            self.assertEqual(total(s, "wsedge_bridge_backend_up", endpoint=dead), 0)
            self.assertEqual(total(s, "wsedge_bridge_routes_down"), 2)
        # Without the flag the same server is ready.
        with self.serve("--route", f"/={dead}", app="bridge") as (url, proc):
            self.assertEqual(get(cores_up(proc) + "/readyz")[0], 200)

    def test_admin_address_flags(self):
        port = free_port()
        with self.serve("--admin", f"127.0.0.1:{port}") as (url, proc):
            self.assertEqual(admin_url(proc), f"http://127.0.0.1:{port}")
            # An --admin address that is taken stops the second server at start-up.
            r = subprocess.run([BINARY, "--plain", "--listen", "127.0.0.1:0", "--admin",
                                f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=WAIT)
            self.assertEqual(r.returncode, 1)
            self.assertIn("admin port", r.stderr)
        with self.serve("--admin", "off") as (url, proc):
            pass
        self.assertNotIn("admin on", proc.stdout.read())

def main():
    global BINARY
    BINARY = os.path.abspath(sys.argv.pop(1))
    bridge_test.BINARY = BINARY
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
