"""systemd integration, against the real binary and the unit `meson install` installs
(docs/OPERATIONS.md §6): the unit passes `systemd-analyze verify`, and the server speaks the
sd_notify protocol to a NOTIFY_SOCKET the test binds itself, as systemd would: READY=1 once it
serves, WATCHDOG=1 while its cores turn (WATCHDOG_USEC set), RELOADING=1 then READY=1 around a
SIGHUP, STOPPING=1 at SIGTERM.

A `meson install` into a scratch DESTDIR puts the binary, the unit, the man page and the
example config where a package would.

usage: systemd_test.py PATH_TO_WSEDGE PATH_TO_BUILT_UNIT BUILD_DIR
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from raw_ws import check, summary  # noqa: E402


def verify_unit(binary, unit):
    with tempfile.TemporaryDirectory() as tmp:
        text = open(unit).read()
        # The installed unit names the installed binary; verify checks that ExecStart exists.
        exec_path = next(l.split("=", 1)[1].split()[0] for l in text.splitlines()
                         if l.startswith("ExecStart="))
        path = os.path.join(tmp, "wsedge.service")
        with open(path, "w") as f:
            f.write(text.replace(exec_path, os.path.abspath(binary)))
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", path],
                           capture_output=True, text=True, timeout=60)
        check("unit: systemd-analyze verify passes without a warning",
              r.returncode == 0 and not r.stderr.strip(), r.stderr)
        for key in ("Type=notify", "WatchdogSec=", "LimitNOFILE=", "ProtectSystem=strict",
                    "NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                    "ExecReload=", "KillSignal=SIGTERM"):
            check(f"unit: has {key}", key in text)


def messages(sock, until, want):
    """Datagrams received until one contains `want` (or the deadline): their texts, in order."""
    got = []
    while time.monotonic() < until:
        sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            break
        if want in got[-1]:
            break
    return got


def notify(binary):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
        proc = subprocess.Popen([binary, "--plain", "--app", "echo", "--listen", "127.0.0.1:0",
                                 "--cores", "2"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            check("notify: the server starts", line.startswith("listening on"), line)
            got = messages(sock, time.monotonic() + 10, "READY=1")
            check("notify: READY=1 once every core serves", any("READY=1" in m for m in got), got)
            got = [m for m in messages(sock, time.monotonic() + 2, "never") if "WATCHDOG=1" in m]
            # 2 s at a 200 ms ping period: about ten; a loaded machine may delay some.
            check("notify: WATCHDOG=1 at half the WATCHDOG_USEC period", len(got) >= 3,
                  f"{len(got)} pings in 2 s")
            proc.send_signal(signal.SIGHUP)
            got = messages(sock, time.monotonic() + 10, "READY=1")
            check("notify: SIGHUP says RELOADING=1, then READY=1",
                  any("RELOADING=1" in m for m in got) and "READY=1" in got[-1], got)
            proc.send_signal(signal.SIGTERM)
            got = messages(sock, time.monotonic() + 10, "STOPPING=1")
            check("notify: SIGTERM says STOPPING=1", any("STOPPING=1" in m for m in got), got)
            proc.wait(timeout=20)
            check("notify: exits 0", proc.returncode == 0, proc.returncode)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            sock.close()


def install(build_dir):
    with tempfile.TemporaryDirectory() as dest:
        r = subprocess.run(["meson", "install", "-C", build_dir, "--no-rebuild", "--quiet",
                            "--destdir", dest], capture_output=True, text=True, timeout=300)
        check("install: meson install into a DESTDIR succeeds", r.returncode == 0,
              r.stdout[-1000:] + r.stderr[-1000:])
        found = {os.path.relpath(os.path.join(d, f), dest)
                 for d, _, fs in os.walk(dest) for f in fs}
        for suffix in ("bin/wsedge", "systemd/system/wsedge.service", "man1/wsedge.1",
                       "wsedge/wsedge.toml"):
            check(f"install: installs .../{suffix}", any(p.endswith(suffix) for p in found),
                  sorted(found)[:20])


def main(argv):
    verify_unit(argv[1], argv[2])
    notify(argv[1])
    install(argv[3])
    return summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
