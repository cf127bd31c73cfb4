"""Starts a wsedge server for an integration test and stops it gracefully afterwards.

Used as a module (start_server, make_cert) by the Python suites, and as a command by suites in
other languages:  wsedge_server.py BINARY [--tls] [server flags...] -- COMMAND...  runs COMMAND
with WSEDGE_URL set to the server's ws:// or wss:// address (and WSEDGE_CA to its certificate)
and fails if either fails.
"""
import contextlib
import os
import signal
import subprocess
import sys
import tempfile


@contextlib.contextmanager
def start_server(binary, *flags, tls=None, prefix=(), app="echo"):
    """tls: (cert, key) to serve wss://, else plain ws://. prefix: a command the server runs
    under (e.g. prlimit with its options). app: "echo" (what the engine suites test) or
    "bridge" (then flags name the backends)."""
    mode = ["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else ["--plain"]
    # An admin port of its own (port 0) unless the test picks one: servers of parallel tests
    # must not meet on the default 127.0.0.1:9090. admin_url(proc) reads its address.
    admin = [] if "--admin" in flags else ["--admin", "127.0.0.1:0"]
    args = [*prefix, binary, "--listen", "127.0.0.1:0", "--app", app, *mode, *admin, *flags]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()}")
    url = line.split()[2]
    failed = False
    try:
        yield url, proc
    except BaseException:
        failed = True
        raise
    finally:
        if proc.poll() is None:
            # SIGINT: every client gets its Close now (SIGTERM would drain over
            # --drain-timeout, which tests/ops/drain_test.py checks).
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise RuntimeError("server did not stop within 20 s of SIGINT")
        proc.log = proc.stderr.read()  # the per-core counters logged at exit, for tests to read
        if failed:
            # What the server saw is what tells a rare failure (one in a CI run) from another.
            sys.stderr.write(f"--- server log ({' '.join(args)}), last 60 lines:\n")
            sys.stderr.write("\n".join(proc.log.splitlines()[-60:]) + "\n---\n")
        if proc.returncode != 0:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.log}")


def admin_url(proc):
    """The admin port's http://HOST:PORT, from the line after the listening line(s): call it
    once, after reading the listening lines the test needs."""
    for line in proc.stdout:
        if line.startswith("admin on "):
            return line.split()[2]
    raise RuntimeError("server printed no admin address")


def host_port(url):
    hostport = url.split("//", 1)[1].rstrip("/")
    host, port = hostport.rsplit(":", 1)
    return host, int(port)


def make_cert(directory, name, key_type="ec"):
    """A self-signed certificate for `name` (and 127.0.0.1) made with the openssl CLI.
    Returns (cert_path, key_path)."""
    cert = os.path.join(directory, f"{name}.crt")
    key = os.path.join(directory, f"{name}.key")
    algo = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_type == "ec" else ["-newkey", "rsa:2048"]
    subprocess.run(["openssl", "req", "-x509", *algo, "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def main(argv):
    """wsedge_server.py BINARY [--tls] [flags...] -- COMMAND...: with --tls the server gets a
    fresh self-signed certificate and COMMAND gets its path in WSEDGE_CA."""
    if "--" not in argv:
        print("usage: wsedge_server.py BINARY [--tls] [flags...] -- COMMAND...", file=sys.stderr)
        return 2
    cut = argv.index("--")
    binary, flags, command = argv[1], argv[2:cut], argv[cut + 1:]
    with tempfile.TemporaryDirectory() as tmp:
        tls = None
        if "--tls" in flags:
            flags.remove("--tls")
            tls = make_cert(tmp, "localhost")
        with start_server(binary, *flags, tls=tls) as (url, _):
            env = dict(os.environ, WSEDGE_URL=url)
            if tls:
                env["WSEDGE_CA"] = tls[0]
            rc = subprocess.call(command, env=env)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
