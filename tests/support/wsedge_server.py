"""Starts a wsedge server for an integration test and stops it gracefully afterwards.

Used as a module (start_server) by the Python suites, and as a command by suites in other
languages:  wsedge_server.py BINARY [server flags...] -- COMMAND...  runs COMMAND with
WSEDGE_URL set to the server's ws:// address and fails if either fails.
"""
import contextlib
import os
import signal
import subprocess
import sys


@contextlib.contextmanager
def start_server(binary, *flags):
    args = [binary, "--listen", "127.0.0.1:0", "--plain", *flags]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()}")
    url = line.split()[2]
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise RuntimeError("server did not stop within 20 s of SIGTERM")
        err = proc.stderr.read()
        if proc.returncode != 0:
            raise RuntimeError(f"server exited with {proc.returncode}: {err}")


def host_port(url):
    hostport = url.split("//", 1)[1].rstrip("/")
    host, port = hostport.rsplit(":", 1)
    return host, int(port)


def main(argv):
    if "--" not in argv:
        print("usage: wsedge_server.py BINARY [flags...] -- COMMAND...", file=sys.stderr)
        return 2
    cut = argv.index("--")
    binary, flags, command = argv[1], argv[2:cut], argv[cut + 1:]
    with start_server(binary, *flags) as (url, _):
        env = dict(os.environ, WSEDGE_URL=url)
        rc = subprocess.call(command, env=env)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
