"""CURVE key files for wsedge backends and edges (BRIDGE-PROTOCOL.md §10).

File format: UTF-8 text, one ``name: value`` per line, ``#`` starts a comment line::

    # wsedge CURVE key pair "backend-a"
    public: <40 characters of Z85>
    secret: <40 characters of Z85>

``NAME.key`` holds both lines (mode 0600: give it to the process that owns the key);
``NAME.pub`` holds only the ``public:`` line (hand it to the peers). A file with only
``secret:`` is accepted too (the public key is derived from it).

Allow-list files (``curve_allow_file``) hold one public key per line, either bare Z85 or as
``public: <z85>``, so several ``.pub`` files can simply be concatenated. Z85 has ``#`` and
``:`` in its alphabet: a line of exactly 40 Z85 characters is a key even if it starts with
``#``; other lines starting with ``#`` are comments.

Usage::

    python3 -m wsedge_backend.keys NAME [DIR]     # writes DIR/NAME.key and DIR/NAME.pub
"""
from __future__ import annotations

import os
import re
import sys
from typing import Iterable, List, Optional, Tuple

import zmq
import zmq.utils.z85


def _z85(value: str, what: str) -> bytes:
    try:
        v = value.strip().encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{what}: not a Z85 key") from None
    if len(v) != 40:
        raise ValueError(f"{what}: a Z85 CURVE key is 40 characters, not {len(v)}")
    try:
        zmq.utils.z85.decode(v)
    except Exception:  # noqa: BLE001 - KeyError, struct.error: not Z85
        raise ValueError(f"{what}: not a Z85 key") from None
    return v


def write_keypair(name: str, directory: str = ".") -> Tuple[str, str]:
    """Creates a new key pair; writes DIR/NAME.key (0600) and DIR/NAME.pub. Returns both paths.
    Refuses to overwrite an existing file."""
    public, secret = zmq.curve_keypair()
    key_path = os.path.join(directory, name + ".key")
    pub_path = os.path.join(directory, name + ".pub")
    head = f'# wsedge CURVE key pair "{name}" (Z85)\n'
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{head}public: {public.decode()}\nsecret: {secret.decode()}\n")
    fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(f"{head}public: {public.decode()}\n")
    return key_path, pub_path


_FIELD = re.compile(r"(public|secret)\s*:\s*(\S+)", re.IGNORECASE)


def _line(line: str, where: str):
    """(name, z85) for a ``public:``/``secret:`` line, (None, z85) for a bare key, None for
    a blank or comment line. Z85 has ``#`` and ``:`` in its alphabet, so a line that is one
    40-character key counts as a key even when it starts with ``#``."""
    line = line.strip()
    m = _FIELD.fullmatch(line)
    if m:
        return m.group(1).lower(), _z85(m.group(2), where)
    if len(line) == 40:
        try:
            return None, _z85(line, where)
        except ValueError:
            pass
    if not line or line.startswith("#"):
        return None
    raise ValueError(f"{where}: expected 'public: <z85>', 'secret: <z85>' or a comment")


def _fields(path: str) -> dict:
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            entry = _line(line, f"{path}:{n}")
            if entry is not None:
                if entry[0] is None:
                    raise ValueError(f"{path}:{n}: a bare key in a key file (write 'public: ')")
                out[entry[0]] = entry[1]
    return out


def load_keypair(path: str) -> Tuple[bytes, bytes]:
    """Reads a key file; returns (public, secret) as Z85 bytes. ValueError when the file
    has no ``secret:`` line or the public key does not belong to the secret one."""
    fields = _fields(path)
    secret = fields.get("secret")
    if secret is None:
        raise ValueError(f"{path}: no 'secret:' line")
    public = zmq.curve_public(secret)
    if "public" in fields and fields["public"] != public:
        raise ValueError(f"{path}: the public key does not match the secret key")
    return public, secret


def load_public(path: str) -> bytes:
    """The ``public:`` key of a .pub or .key file (Z85 bytes)."""
    fields = _fields(path)
    if "public" in fields:
        return fields["public"]
    if "secret" in fields:
        return zmq.curve_public(fields["secret"])
    raise ValueError(f"{path}: no key")


def load_allow_list(path: Optional[str] = None, keys: Iterable = ()) -> List[bytes]:
    """Public keys (Z85 bytes) from ``keys`` (str or bytes, Z85) and from an allow-list file:
    one key per line, bare or ``public: <z85>``; blank and ``#`` lines skipped."""
    out = [_z85(k.decode() if isinstance(k, bytes) else k, "curve_allow") for k in keys]
    if path:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                entry = _line(line, f"{path}:{n}")
                if entry is None:
                    continue
                if entry[0] == "secret":
                    raise ValueError(f"{path}:{n}: a secret key in an allow-list")
                out.append(entry[1])
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not 1 <= len(argv) <= 2 or argv[0].startswith("-"):
        print("usage: python3 -m wsedge_backend.keys NAME [DIR]  (writes NAME.key and NAME.pub)",
              file=sys.stderr)
        return 2
    try:
        key, pub = write_keypair(argv[0], argv[1] if len(argv) > 1 else ".")
    except (OSError, ValueError) as e:
        print(f"wsedge_backend.keys: {e}", file=sys.stderr)
        return 1
    print(f"wrote {key} (secret, keep it) and {pub} (public, give it to peers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
