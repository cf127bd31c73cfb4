"""Interop with Python's `websockets` (Debian python3-websockets) against a running wsedge.

WSEDGE_URL names the server (tests/support/wsedge_server.py sets it).
"""
import asyncio
import os
import resource
import ssl
import sys
import time

import websockets

URL = os.environ["WSEDGE_URL"]
SSL = ssl.create_default_context(cafile=os.environ["WSEDGE_CA"]) if URL.startswith("wss:") else None
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20, 16 << 20]
RESULTS = []


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


async def main():
    for test in (echo_sizes, fragmented, ping, close_codes, concurrent):
        try:
            await test()
        except Exception as e:  # noqa: BLE001
            check(test.__name__, False, repr(e))
    passed = RESULTS.count(True)
    failed = RESULTS.count(False)
    print(f"python websockets interop ({URL.split(':')[0]}): {passed} passed, {failed} failed")
    return 1 if failed else 0


sys.exit(asyncio.run(main()))
