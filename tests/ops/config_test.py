"""The config file of the real binary (docs/OPERATIONS.md section 3): a server started from a file
alone; flags that replace the file's values; --check-config on good and bad files (exit codes,
FILE:LINE:COLUMN in the message), the shipped example included; SIGHUP reloads that change a
limit live, a bad file refused with the old limits still applied, a change of `cores` named
as needing a restart while the rest of the reload applies, and certificates the file names
reloaded with it.

usage: config_test.py PATH_TO_WSEDGE EXAMPLE_CONFIG
"""
import asyncio
import os
import re
import select
import signal
import ssl
import subprocess
import sys
import tempfile
import time

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from wsedge_server import make_cert, start_server  # noqa: E402

RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'}  {name}{'' if ok else ': ' + str(detail)}", flush=True)


class Wsedge:
    """One wsedge started from a config file; reads its stdout and log (stderr) without ever
    blocking past a deadline."""

    def __init__(self, binary, *flags):
        self.proc = subprocess.Popen([binary, *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     bufsize=0)
        self.pending = {self.proc.stdout.fileno(): b"", self.proc.stderr.fileno(): b""}
        self.log = []
        line = self.wait_line(self.proc.stdout, lambda l: l.startswith("listening on "))
        if not line:
            self.stop()
            raise RuntimeError(f"server did not start: {self.log}")
        self.url = line.split()[2]

    def wait_line(self, stream, match, timeout=10):
        """The first new line of `stream` that `match`es (log lines are kept in self.log), or
        None when `timeout` seconds pass or the process exits."""
        fd = stream.fileno()
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self.pending[fd]:
                raw, self.pending[fd] = self.pending[fd].split(b"\n", 1)
                line = raw.decode(errors="replace")
                if stream is self.proc.stderr:
                    self.log.append(line)
                if match(line):
                    return line
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.pending[fd] += chunk

    def reload(self, expect):
        """SIGHUP, then the log line containing `expect` (None if it does not come)."""
        self.proc.send_signal(signal.SIGHUP)
        return self.wait_line(self.proc.stderr, lambda l: expect in l)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.returncode


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


async def exchange(url, size, origin=None):
    """Sends `size` bytes and returns "echo" when they come back, "close CODE" when the server
    closes instead, or "refused STATUS" when the upgrade is refused."""
    try:
        async with websockets.connect(url, origin=origin, max_size=None) as ws:
            return await send_on(ws, size)
    except websockets.exceptions.InvalidStatusCode as e:
        return f"refused {e.status_code}"


async def send_on(ws, size):
    try:
        await ws.send(b"x" * size)
        got = await asyncio.wait_for(ws.recv(), 5)
        return "echo" if len(got) == size else f"echo of {len(got)}"
    except websockets.exceptions.ConnectionClosed as e:
        return f"close {e.rcvd.code if e.rcvd else 'none'}"


def run(coro):
    return asyncio.run(coro)


BASE = """# a server from this file alone
plain = true
listen = ["127.0.0.1:0"]
app = "echo"
cores = 1
"""


def start_from_file(binary, tmp):
    path = os.path.join(tmp, "start.toml")
    write(path, BASE + "max-message = 100\n")
    srv = Wsedge(binary, "--config", path)
    try:
        check("a server starts from the file alone", srv.url.startswith("ws://127.0.0.1:"), srv.url)
        check("the file's max-message applies", run(exchange(srv.url, 100)) == "echo")
        got = run(exchange(srv.url, 101))
        check("past the file's max-message: 1009", got == "close 1009", got)
    finally:
        check("stops cleanly", srv.stop() == 0, srv.log[-3:])


def command_line_overrides(binary, tmp):
    path = os.path.join(tmp, "override.toml")
    # listen on a port nobody may bind and the bridge app: start_server's --listen 127.0.0.1:0,
    # --app echo and --plain replace them, and --max-message replaces the file's.
    write(path, 'listen = ["127.0.0.1:1"]\napp = "bridge"\nmax-message = 100\nping-interval = 0\n')
    with start_server(binary, "--config", path, "--max-message", "1000") as (url, _):
        check("command-line --listen and --app replace the file's", url.startswith("ws://127.0.0.1:"), url)
        got = run(exchange(url, 500))
        check("command-line --max-message replaces the file's", got == "echo", got)


def check_config(binary, tmp, example):
    def run_check(*flags):
        p = subprocess.run([binary, "--check-config", *flags], capture_output=True, text=True, timeout=20)
        return p.returncode, p.stdout + p.stderr

    good = os.path.join(tmp, "good.toml")
    write(good, BASE + "max-message = 100\n")
    rc, out = run_check("--config", good)
    check("--check-config on a good file: exit 0, 'config ok'", rc == 0 and "config ok" in out, (rc, out))

    bad = os.path.join(tmp, "bad.toml")
    write(bad, BASE + "max-message = 0\n[auth]\nleewy = 3\n")
    rc, out = run_check("--config", bad)
    check("--check-config on a bad value: exit 2", rc == 2, (rc, out))
    check("... the value's FILE:LINE:COLUMN and key", f"{bad}:6:15: max-message: --max-message: 0 is outside" in out, out)
    check("... and every other error: an unknown key in a table",
          f"{bad}:8:1: auth-leewy: unknown key: no flag --auth-leewy" in out, out)

    syntax = os.path.join(tmp, "syntax.toml")
    write(syntax, BASE + 'listen = "127.0.0.1:1\n')
    rc, out = run_check("--config", syntax)
    check("--check-config on a syntax error: exit 2 with line:column", rc == 2 and f"{syntax}:6:" in out, (rc, out))

    # What a start would load is loaded: a certificate that is not there fails the check.
    missing = os.path.join(tmp, "missing.toml")
    write(missing, f'listen = ["127.0.0.1:0"]\napp = "echo"\n[tls]\ncert = "{tmp}/nope.crt"\nkey = "{tmp}/nope.key"\n')
    rc, out = run_check("--config", missing)
    check("--check-config loads the certificates: a missing one is exit 2, named", rc == 2 and "nope" in out, (rc, out))

    rc, out = run_check("--config", good, "--max-message", "x")
    check("--check-config checks the command line too", rc == 2 and "--max-message" in out, (rc, out))

    # The shipped example, with the files it names replaced on the command line by real ones.
    cert, key = make_cert(tmp, "localhost")
    secret = os.path.join(tmp, "hs-2026.secret")
    write(secret, "s" * 48)
    acl = os.path.join(tmp, "acl.toml")
    write(acl, '[[allow]]\nroles = ["*"]\nresources = ["*"]\npermissions = ["*"]\n')
    rc, out = run_check("--config", example, "--tls-cert", cert, "--tls-key", key,
                        "--auth-hs256-secret-file", secret, "--acl", acl)
    check("the example config passes --check-config", rc == 0 and "config ok" in out, (rc, out))
    rc, out = run_check("--config", example)
    check("... and names its missing files when they are not there", rc == 2 and "/etc/wsedge/" in out, (rc, out))

    # Every key the example shows, commented out or not, is a flag (tables are prefixes).
    flags = set(re.findall(r"^  --([a-z0-9-]+)", subprocess.run([binary, "--help"], capture_output=True,
                                                                 text=True).stdout, re.M))
    prefix, unknown, seen = "", [], 0
    for line in open(example):
        line = line.strip()
        if m := re.match(r"^#?\s*\[([a-z0-9.-]+)\]\s*$", line):
            prefix = m.group(1).replace(".", "-") + "-"
        elif m := re.match(r"^#?\s*([a-z][a-z0-9.-]*)\s*=", line):
            seen += 1
            if prefix + m.group(1).replace(".", "-") not in flags:
                unknown.append(prefix + m.group(1))
    check(f"every key of the example is a flag ({seen} keys)", seen > 40 and not unknown, unknown)


def reloads(binary, tmp):
    path = os.path.join(tmp, "live.toml")
    write(path, BASE + "max-message = 1000\n")
    srv = Wsedge(binary, "--config", path)
    try:
        url = srv.url

        async def live_change():
            # A connection open across the reload: max-message applies to it from its next frame.
            async with websockets.connect(url, max_size=None) as ws:
                before = await send_on(ws, 500)
                write(path, BASE + 'max-message = 100\nallowed-origin = ["https://good.example"]\n')
                line = srv.reload("endpoint_config_reloaded")
                after = await send_on(ws, 500)
            return before, line, after

        before, line, after = run(live_change())
        check("before the reload 500 bytes echo", before == "echo", before)
        check("SIGHUP: the reload is logged by the core", line is not None, srv.log[-5:])
        check("an open connection gets the new max-message (1009)", after == "close 1009", after)
        got = run(exchange(url, 500))
        check("a new connection gets the new max-message (1009)", got == "close 1009", got)
        got = run(exchange(url, 50, origin="https://evil.example"))
        check("the new allowed-origin refuses another origin (403)", got == "refused 403", got)
        got = run(exchange(url, 50, origin="https://good.example"))
        check("... and admits its own", got == "echo", got)

        # A bad file: refused whole, with its FILE:LINE:COLUMN; the max-message it also sets does
        # not apply (all or nothing).
        write(path, BASE + "max-message = 5000\nbogus-key = 1\n")
        line = srv.reload("reload_refused")
        check("a bad file on reload is refused, logged with FILE:LINE:COLUMN",
              line is not None and f"{path}:7:1: bogus-key" in line, line or srv.log[-5:])
        got = run(exchange(url, 500))
        check("the old configuration keeps serving: 500 bytes still 1009", got == "close 1009", got)
        got = run(exchange(url, 50, origin="https://good.example"))
        check("... and still serves within it", got == "echo", got)

        # cores needs a restart: named in a warning, kept; the rest of the same reload applies.
        cores = 2 if len(os.sched_getaffinity(0)) >= 2 else 1
        write(path, BASE.replace("cores = 1", f"cores = {cores}").replace('"127.0.0.1:0"', '"127.0.0.1:1"')
              + "max-message = 5000\n")
        warn = srv.reload("config_needs_restart")
        check("a change of cores/listen logs 'needs a restart' naming the keys",
              warn is not None and "listen" in warn and (cores == 1 or "cores" in warn), warn or srv.log[-5:])
        line = srv.wait_line(srv.proc.stderr, lambda l: "endpoint_config_reloaded" in l)
        check("... the rest of the reload applies", line is not None, srv.log[-5:])
        got = run(exchange(url, 4000))
        check("... and the server keeps serving on its address, with the new limit", got == "echo", got)
    finally:
        check("stops cleanly after the reloads", srv.stop() == 0, srv.log[-3:])


def tls_reload(binary, tmp):
    """Certificates named by the file reload with it: a new file name takes for new connections;
    one that does not load is refused and the old certificate keeps serving."""
    old = make_cert(tmp, "localhost")
    os.makedirs(os.path.join(tmp, "new"), exist_ok=True)
    new = make_cert(os.path.join(tmp, "new"), "localhost")
    path = os.path.join(tmp, "tls.toml")

    def config(cert, key):
        write(path, f'listen = ["127.0.0.1:0"]\napp = "echo"\ncores = 1\n[tls]\ncert = "{cert}"\nkey = "{key}"\n')

    def trusts(url, ca):
        ctx = ssl.create_default_context(cafile=ca)

        async def go():
            try:
                async with websockets.connect(url, ssl=ctx) as ws:
                    return await send_on(ws, 10) == "echo"
            except ssl.SSLError:
                return False
        return run(go())

    config(*old)
    srv = Wsedge(binary, "--config", path)
    try:
        url = srv.url
        check("wss from the file's certificate", trusts(url, old[0]) and not trusts(url, new[0]))
        config(*new)
        line = srv.reload("tls_reloaded")
        check("a new certificate file in the config reloads", line is not None, srv.log[-5:])
        check("... and new connections get it", trusts(url, new[0]) and not trusts(url, old[0]))
        config(os.path.join(tmp, "gone.crt"), new[1])
        line = srv.reload("reload_refused")
        check("a certificate that does not load: the reload is refused", line is not None and "gone.crt" in line,
              line or srv.log[-5:])
        check("... and the running certificate keeps serving", trusts(url, new[0]))
    finally:
        check("stops cleanly after the TLS reloads", srv.stop() == 0, srv.log[-3:])


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary, example = argv[1], argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        start_from_file(binary, tmp)
        command_line_overrides(binary, tmp)
        check_config(binary, tmp, example)
        reloads(binary, tmp)
        tls_reload(binary, tmp)
    failed = RESULTS.count(False)
    print(f"{len(RESULTS) - failed}/{len(RESULTS)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
