"""Interop with Python's `websockets` (Debian python3-websockets) against a running wsedge.

WSEDGE_URL names the server (tests/support/wsedge_server.py sets it); WSEDGE_DEFLATE its
--deflate mode (docs/DEFLATE.md; default no-context-takeover), which decides what the
compression cases expect it to negotiate.
"""
import asyncio
import os
import resource
import ssl
import sys
import time

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

URL = os.environ["WSEDGE_URL"]
SSL = ssl.create_default_context(cafile=os.environ["WSEDGE_CA"]) if URL.startswith("wss:") else None
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20, 16 << 20]
RESULTS = []
DEFLATE = os.environ.get("WSEDGE_DEFLATE", "no-context-takeover")


def check(name, ok, detail=""):
    RESULTS.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'}  {name}{'' if ok else ': ' + detail}", flush=True)


async def echo_sizes():
    async with websockets.connect(URL, max_size=None, compression=None, ssl=SSL) as ws:
        for size in SIZES:
            text = "é" * (size // 2) + "a" * (size % 2)
            await ws.send(text)
            got = await ws.recv()
            check(f"text echo {size} bytes", got == text, f"{len(got)} chars back")
            data = os.urandom(size)
            await ws.send(data)
            got = await ws.recv()
            check(f"binary echo {size} bytes", got == data, f"{len(got)} bytes back")


async def fragmented():
    async with websockets.connect(URL, max_size=None, compression=None, ssl=SSL) as ws:
        await ws.send(["frag", "men", "ted ", "κόσμε"])
        got = await ws.recv()
        check("fragmented text", got == "fragmented κόσμε", repr(got))
        parts = [os.urandom(n) for n in (1, 1000, 70000, 0, 5)]
        await ws.send(parts)
        got = await ws.recv()
        check("fragmented binary", got == b"".join(parts), f"{len(got)} bytes")


async def ping():
    async with websockets.connect(URL, compression=None, ssl=SSL) as ws:
        waiter = await ws.ping(b"are you there")
        latency = await asyncio.wait_for(waiter, 5)
        check("ping answered with pong", True)
        del latency


async def close_codes():
    for code, reason in ((1000, ""), (1001, "leaving"), (3000, "app"), (4000, "bye"), (4999, "last")):
        ws = await websockets.connect(URL, compression=None, ssl=SSL)
        await ws.send("before close")
        await ws.recv()
        await ws.close(code=code, reason=reason)
        check(f"close {code} echoed", ws.close_code == code and ws.close_reason == "",
              f"got {ws.close_code} {ws.close_reason!r}")


async def concurrent(n=1000):
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    t = time.time()
    conns = await asyncio.gather(*(websockets.connect(URL, compression=None, ssl=SSL) for _ in range(n)))

    async def talk(i, ws):
        for j in range(3):
            msg = f"conn {i} msg {j}"
            await ws.send(msg)
            if await ws.recv() != msg:
                return False
        await ws.close()
        return ws.close_code == 1000

    oks = await asyncio.gather(*(talk(i, ws) for i, ws in enumerate(conns)))
    check(f"{n} concurrent connections, 3 echoes each", all(oks),
          f"{oks.count(False)} failed in {time.time() - t:.1f}s")


def json_text(n):
    """n characters of JSON-like text: compressible, as a feed's messages are."""
    rows = ('{"id":%d,"user":"user%d","score":%d,"tags":["alpha","beta"]},' % (i, i % 7, i * 37 % 1000)
            for i in range(n // 40 + 2))
    return "".join(rows)[:n]


def count_compressed(ws):
    """A list that gets, for every frame the server sends, whether it came compressed (RSV1):
    websockets hides that, so its permessage-deflate decoder is wrapped."""
    [ext] = ws.extensions
    seen, decode = [], ext.decode

    def counting(frame, *, max_size=None):
        seen.append(frame.rsv1)
        return decode(frame, max_size=max_size)
    ext.decode = counting
    return seen


async def deflate_default_offer():
    """websockets' own offer, "permessage-deflate; client_max_window_bits": in the default mode
    wsedge turns both directions' context takeover off; with --deflate context-takeover it keeps
    both, and names the client's window."""
    want = {
        "no-context-takeover": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        "context-takeover": "permessage-deflate; client_max_window_bits=15",
    }[DEFLATE]
    async with websockets.connect(URL, max_size=None, ssl=SSL) as ws:
        answer = ws.response_headers.get("Sec-WebSocket-Extensions")
        check(f"{DEFLATE}: websockets' default offer answered {want!r}", answer == want, repr(answer))
        [ext] = ws.extensions
        takeover = DEFLATE == "context-takeover"
        check(f"{DEFLATE}: negotiated context takeover {takeover} both ways",
              (ext.local_no_context_takeover, ext.remote_no_context_takeover) == (not takeover, not takeover),
              repr(ext))
        seen = count_compressed(ws)
        # The same messages again and again: with context takeover the repeats refer back.
        for size in (100, 1 << 10, 64 << 10, 1 << 20, 100, 1 << 10, 64 << 10):
            text = json_text(size)
            await ws.send(text)
            got = await ws.recv()
            check(f"{DEFLATE}: compressed text echo {size} bytes", got == text, f"{len(got)} chars back")
            data = json_text(size).encode()
            await ws.send(data)
            got = await ws.recv()
            check(f"{DEFLATE}: compressed binary echo {size} bytes", got == data, f"{len(got)} bytes back")
        check(f"{DEFLATE}: every echo came back compressed", seen == [True] * 14, repr(seen))
        await ws.send("short")
        check(f"{DEFLATE}: a 5-byte message", await ws.recv() == "short")
        check(f"{DEFLATE}: it came back uncompressed (below --deflate-min-size)", seen[-1] is False, repr(seen))


async def deflate_server_window():
    """An offer naming a server window: the answer names it too, and the server's replies
    longer than the window inflate in it (websockets inflates with exactly that window)."""
    offer = ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=10)
    async with websockets.connect(URL, max_size=None, ssl=SSL, extensions=[offer], compression=None) as ws:
        answer = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        check("server_max_window_bits=10 in the answer", "server_max_window_bits=10" in answer, repr(answer))
        seen = count_compressed(ws)
        for i in range(3):
            text = json_text(50000) * 2
            await ws.send(text)
            check(f"10-bit windows: echo {i} of {len(text)} bytes", await ws.recv() == text)
        check("10-bit windows: echoes compressed", seen == [True] * 3, repr(seen))


async def main():
    for test in (deflate_default_offer, deflate_server_window, echo_sizes, fragmented, ping, close_codes,
                 concurrent):
        try:
            await test()
        except Exception as e:  # noqa: BLE001
            check(test.__name__, False, repr(e))
    passed = RESULTS.count(True)
    failed = RESULTS.count(False)
    print(f"python websockets interop ({URL.split(':')[0]}): {passed} passed, {failed} failed")
    return 1 if failed else 0


sys.exit(asyncio.run(main()))
