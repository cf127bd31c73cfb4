"""What the limit suites share: a raw upgrade request, masked client frames built by hand (to
send them at any pace and split), and a list of named checks each suite reports on."""
import socket
import struct

REQUEST = (b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

results = []


def check(name, ok, detail="", skip=None):
    """Records and prints one check; skip: why it cannot be made here (printed, not counted)."""
    if skip:
        print(f"skip  {name}: {skip}", flush=True)
        return
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'}  {name}{'' if ok else ': ' + str(detail)}", flush=True)


def summary():
    """Prints how many checks passed; the exit status for the suite (1 if any failed)."""
    failed = results.count(False)
    print(f"{len(results) - failed}/{len(results)} checks passed")
    return 1 if failed else 0


def frame(opcode, payload, fin=True):
    """A masked client frame; the all-zero key keeps the payload as it is (cheap to build)."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return hdr + b"\0\0\0\0" + payload


def read_upgrade(s):
    """Reads the answer to REQUEST sent on `s`; returns what came after the 101's head (the first
    frames, if any). Raises ConnectionError when the server closes or answers anything but 101."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        buf += chunk
    if not buf.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(buf.split(b"\r\n")[0].decode(errors="replace"))
    return buf.split(b"\r\n\r\n", 1)[1]


def ws_connect(addr, timeout=10.0):
    """A client socket upgraded with REQUEST, and what came after the 101's head (the first
    frames, if any): raw, so a test reads the server's frames itself. Raises ConnectionError
    when the server closes or answers anything but 101."""
    s = socket.create_connection(addr, timeout=timeout)
    try:
        s.sendall(REQUEST)
        return s, read_upgrade(s)
    except BaseException:
        s.close()
        raise
