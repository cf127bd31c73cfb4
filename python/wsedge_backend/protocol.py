"""The wsedge bridge protocol's codec, version 1 (docs/BRIDGE-PROTOCOL.md §2-§4).

Pure code over bytes: no sockets, no state. Every integer is big-endian.

A message is a list of ZeroMQ frames::

    frame 0  header, exactly 24 bytes: b"WE", version, type, flags (u16), connection id (18 B)
    frame 1  meta: entries of u8 key length, ASCII key, u16 value length, value (may be empty)
    frame 2  payload, only for the types in PAYLOAD_TYPES

:func:`decode` raises :class:`ProtocolError` whose ``code`` is the ERROR code the spec
answers with (``bad-frame``, ``bad-version``, ``unknown-type``, ``bad-meta``).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

MAGIC = b"WE"
VERSION = 1
HEADER_SIZE = 24
CONN_ID_SIZE = 18
MAX_IDS_PER_SEND = 128

# Up: edge to backend.
HELLO = 0x01
BEAT = 0x02
OPEN = 0x10
MESSAGE = 0x11
CLOSE = 0x12
SNAPSHOT = 0x13
CLIENT_PUBLISH = 0x14  # a client's publish the edge's ACL allowed (docs/AUTH.md §6)
ACK = 0x20
ERROR = 0x21
# Down: backend to edge.
WELCOME = 0x81
SEND = 0x82
CLOSE_COMMAND = 0x83
SUBSCRIBE = 0x84
UNSUBSCRIBE = 0x85
PUBLISH = 0x86
SNAPSHOT_REQUEST = 0x87
RECEIVED = 0x88
ACL = 0x89  # a live ACL change (docs/AUTH.md §6)
EXPIRES = 0x8A  # a connection's new expiry (docs/AUTH.md §5)

TYPE_NAMES = {
    HELLO: "HELLO", BEAT: "BEAT", OPEN: "OPEN", MESSAGE: "MESSAGE", CLOSE: "CLOSE",
    SNAPSHOT: "SNAPSHOT", CLIENT_PUBLISH: "PUBLISH", ACK: "ACK", ERROR: "ERROR",
    WELCOME: "WELCOME", SEND: "SEND", CLOSE_COMMAND: "CLOSE", SUBSCRIBE: "SUBSCRIBE",
    UNSUBSCRIBE: "UNSUBSCRIBE", PUBLISH: "PUBLISH", SNAPSHOT_REQUEST: "SNAPSHOT?",
    RECEIVED: "RECEIVED", ACL: "ACL", EXPIRES: "EXPIRES",
}
KNOWN_TYPES = frozenset(TYPE_NAMES)
UP_TYPES = frozenset({HELLO, BEAT, OPEN, MESSAGE, CLOSE, SNAPSHOT, CLIENT_PUBLISH, ACK, ERROR})
DOWN_TYPES = KNOWN_TYPES - UP_TYPES
# Types whose message has a payload frame (frame 2); all others have exactly two frames.
PAYLOAD_TYPES = frozenset({MESSAGE, SNAPSHOT, CLIENT_PUBLISH, SEND, PUBLISH})
# The events an edge core keeps and resends until a backend's RECEIVED counts them (§5.4): a
# backend that left one of them out of its count would make the edge resend it for ever.
COUNTED_TYPES = frozenset({OPEN, MESSAGE, CLOSE, CLIENT_PUBLISH})

FLAG_BINARY = 0x0001  # MESSAGE, PUBLISH (both directions), SEND: binary (else text)
FLAG_ACK = 0x8000  # a command asking for ACK or ERROR

# ERROR codes (§4).
E_GONE = "gone"
E_BAD_FRAME = "bad-frame"
E_BAD_META = "bad-meta"
E_BAD_VERSION = "bad-version"
E_UNKNOWN_TYPE = "unknown-type"
E_FULL = "full"
E_DENIED = "denied"  # the ACL refused a SUBSCRIBE
E_BAD_ACL = "bad-acl"  # an ACL change the edge could not apply (it changed nothing)

# ACL ops (§4, docs/AUTH.md §6) and the meta each one needs: the edge refuses one without them
# (bad-acl), so the library refuses it first rather than collect one ERROR per core.
ACL_OPS = {
    "add-user-roles": ("user", "roles"),
    "remove-user-roles": ("user", "roles"),
    "remove-user": ("user",),
    "add-role-parents": ("role", "parents"),
    "remove-role-parents": ("role", "parents"),
    "remove-role": ("role",),
    "allow": ("roles", "resources", "permissions"),
    "deny": ("roles", "resources", "permissions"),
    "remove-allow": ("roles", "resources", "permissions"),
    "remove-deny": ("roles", "resources", "permissions"),
}

_ID = struct.Struct("!IIHII")
_HDR = struct.Struct("!2sBBH")


class ProtocolError(ValueError):
    """A message that does not follow the spec. ``code`` is the ERROR code to answer with;
    ``header`` is the decoded header when frame 0 itself was fine (else None)."""

    def __init__(self, code: str, reason: str, header: "Optional[Header]" = None):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.header = header


class ConnId(NamedTuple):
    """One WebSocket connection in the fleet, for ever (§2): 18 bytes on the wire.

    ``str(cid)`` is the printed form ``node.epoch.core.slot.gen`` in lower-case hex."""

    node: int = 0
    epoch: int = 0
    core: int = 0
    slot: int = 0
    gen: int = 0

    def __str__(self) -> str:
        return ".".join(format(v, "x") for v in self)

    def __repr__(self) -> str:
        return f"ConnId({self})"

    def to_bytes(self) -> bytes:
        """The 18-byte wire form."""
        return _ID.pack(*self)

    @classmethod
    def from_bytes(cls, b: bytes) -> "ConnId":
        """Reads exactly 18 bytes (ValueError otherwise)."""
        if len(b) != CONN_ID_SIZE:
            raise ValueError(f"a connection id is {CONN_ID_SIZE} bytes, not {len(b)}")
        return cls(*_ID.unpack(b))

    @classmethod
    def parse(cls, text: str) -> "ConnId":
        """The inverse of ``str()``: ``"1a2b3c4d.6560f1a0.3.1f.7"``."""
        parts = text.split(".")
        if len(parts) != 5:
            raise ValueError(f"not a connection id: {text!r}")
        cid = cls(*(int(p, 16) for p in parts))
        cid.to_bytes()  # range check
        return cid

    @property
    def core_key(self) -> Tuple[int, int, int]:
        """(node, epoch, core): the edge core that owns this connection."""
        return (self.node, self.epoch, self.core)

    def is_zero(self) -> bool:
        return not any(self)


ZERO_ID = ConnId()


@dataclass(frozen=True)
class Header:
    """Frame 0 (24 bytes)."""

    type: int
    flags: int = 0
    id: ConnId = ZERO_ID
    version: int = VERSION

    def encode(self) -> bytes:
        return _HDR.pack(MAGIC, self.version, self.type, self.flags) + self.id.to_bytes()


def encode_header(type_: int, flags: int = 0, cid: ConnId = ZERO_ID) -> bytes:
    """The 24-byte frame 0 of a version-1 message."""
    return Header(type_, flags, cid).encode()


def decode_header(frame: bytes) -> Header:
    """Checks and decodes frame 0; raises ProtocolError (bad-frame, bad-version,
    unknown-type). A frame 0 longer than 24 bytes is as malformed as a shorter one."""
    frame = bytes(frame)
    if len(frame) != HEADER_SIZE:
        raise ProtocolError(E_BAD_FRAME, f"header of {len(frame)} bytes, not {HEADER_SIZE}")
    magic, version, type_, flags = _HDR.unpack_from(frame)
    if magic != MAGIC:
        raise ProtocolError(E_BAD_FRAME, f"bad magic {magic.hex()}")
    cid = ConnId.from_bytes(frame[6:])
    if version != VERSION:
        raise ProtocolError(E_BAD_VERSION, f"version {version}", Header(type_, flags, cid, version))
    if type_ not in KNOWN_TYPES:
        raise ProtocolError(E_UNKNOWN_TYPE, f"type 0x{type_:02x}", Header(type_, flags, cid))
    return Header(type_, flags, cid)


# ---- meta -----------------------------------------------------------------------------------

MetaValue = Union[bytes, bytearray, memoryview, str]


def encode_meta(entries: Union[Mapping[str, MetaValue], Iterable[Tuple[str, MetaValue]]]) -> bytes:
    """Encodes meta entries (a dict or (key, value) pairs, in order). str values are UTF-8.
    Raises ValueError for an empty, non-ASCII, repeated or too long key, or a value over
    65,535 bytes."""
    items = entries.items() if isinstance(entries, Mapping) else entries
    out = bytearray()
    seen = set()
    for key, value in items:
        k = key.encode("ascii")
        if not 1 <= len(k) <= 255:
            raise ValueError(f"meta key {key!r}: length {len(k)}")
        if key in seen:
            raise ValueError(f"meta key {key!r} repeated")
        seen.add(key)
        v = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if len(v) > 0xFFFF:
            raise ValueError(f"meta value of {key!r}: {len(v)} bytes")
        out += bytes((len(k),)) + k + struct.pack("!H", len(v)) + v
    return bytes(out)


def decode_meta(frame: bytes) -> Dict[str, bytes]:
    """Parses a meta frame into an ordered dict key -> bytes. Raises ProtocolError bad-meta
    unless it parses exactly (no trailing bytes, keys non-empty ASCII and unique)."""
    frame = bytes(frame)
    out: Dict[str, bytes] = {}
    i, n = 0, len(frame)
    while i < n:
        klen = frame[i]
        if klen == 0 or i + 1 + klen + 2 > n:
            raise ProtocolError(E_BAD_META, f"entry at {i} cut or empty key")
        try:
            key = frame[i + 1:i + 1 + klen].decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(E_BAD_META, f"non-ASCII key at {i}") from None
        (vlen,) = struct.unpack_from("!H", frame, i + 1 + klen)
        start = i + 3 + klen
        if start + vlen > n:
            raise ProtocolError(E_BAD_META, f"value of {key!r} cut")
        if key in out:
            raise ProtocolError(E_BAD_META, f"key {key!r} repeated")
        out[key] = frame[start:start + vlen]
        i = start + vlen
    return out


def u8(v: int) -> bytes:
    return struct.pack("!B", v)


def u16(v: int) -> bytes:
    return struct.pack("!H", v)


def u32(v: int) -> bytes:
    return struct.pack("!I", v)


def u64(v: int) -> bytes:
    return struct.pack("!Q", v)


def _read(fmt: str, size: int, v: bytes, what: str) -> int:
    if len(v) != size:
        raise ProtocolError(E_BAD_META, f"{what}: {len(v)} bytes, not {size}")
    return struct.unpack(fmt, v)[0]


def read_u8(v: bytes, what: str = "value") -> int:
    return _read("!B", 1, v, what)


def read_u16(v: bytes, what: str = "value") -> int:
    return _read("!H", 2, v, what)


def read_u32(v: bytes, what: str = "value") -> int:
    return _read("!I", 4, v, what)


def read_u64(v: bytes, what: str = "value") -> int:
    return _read("!Q", 8, v, what)


def encode_names(names: Iterable[Union[str, bytes]], what: str = "name") -> bytes:
    """A name list value (``channels``, ``roles``, ACL ``resources``...): each name as u8
    length + name, 1-255 bytes (str is UTF-8). ValueError names the first bad one."""
    out = bytearray()
    for name in names:
        b = name.encode("utf-8") if isinstance(name, str) else bytes(name)
        if not 1 <= len(b) <= 255:
            raise ValueError(f"bad {what} {name!r}: {len(b)} bytes, not 1-255")
        out += bytes((len(b),)) + b
    return bytes(out)


def encode_channels(channels: Iterable[Union[str, bytes]]) -> bytes:
    """A ``channels`` value: a name list whose names also have no NUL (the SUB topic is the
    name followed by 0x00: a NUL inside would end it early)."""
    channels = list(channels)
    for ch in channels:
        if (b"\0" if isinstance(ch, (bytes, bytearray)) else "\0") in ch:
            raise ValueError(f"bad channel name {ch!r}: NUL")
    return encode_names(channels, "channel name")


def decode_names(v: bytes) -> List[str]:
    """Inverse of encode_names; ProtocolError bad-meta when it does not parse exactly."""
    out, i = [], 0
    while i < len(v):
        n = v[i]
        if n == 0 or i + 1 + n > len(v):
            raise ProtocolError(E_BAD_META, "name list cut or with an empty name")
        out.append(v[i + 1:i + 1 + n].decode("utf-8", "replace"))
        i += 1 + n
    return out


decode_channels = decode_names  # a ``channels`` value is a name list


def encode_ids(ids: Sequence[ConnId]) -> bytes:
    """An ``ids`` value (1 to 128 ids of 18 bytes)."""
    if not 1 <= len(ids) <= MAX_IDS_PER_SEND:
        raise ValueError(f"{len(ids)} ids in one SEND (1 to {MAX_IDS_PER_SEND})")
    return b"".join(i.to_bytes() for i in ids)


def decode_ids(v: bytes) -> List[ConnId]:
    if not v or len(v) % CONN_ID_SIZE or len(v) // CONN_ID_SIZE > MAX_IDS_PER_SEND:
        raise ProtocolError(E_BAD_META, f"ids of {len(v)} bytes")
    return [ConnId.from_bytes(v[i:i + CONN_ID_SIZE]) for i in range(0, len(v), CONN_ID_SIZE)]


def decode_snapshot(payload: bytes) -> List[Tuple[ConnId, List[str]]]:
    """A SNAPSHOT part's payload: repeated (18-byte id, u16 channel count, channels each as
    u8 length + name). Raises ProtocolError bad-frame when it does not parse exactly."""
    out, i, n = [], 0, len(payload)
    while i < n:
        if i + CONN_ID_SIZE + 2 > n:
            raise ProtocolError(E_BAD_FRAME, "snapshot entry cut")
        cid = ConnId.from_bytes(payload[i:i + CONN_ID_SIZE])
        (count,) = struct.unpack_from("!H", payload, i + CONN_ID_SIZE)
        i += CONN_ID_SIZE + 2
        chans = []
        for _ in range(count):
            if i >= n or i + 1 + payload[i] > n:
                raise ProtocolError(E_BAD_FRAME, "snapshot channel cut")
            chans.append(payload[i + 1:i + 1 + payload[i]].decode("utf-8", "replace"))
            i += 1 + payload[i]
        out.append((cid, chans))
    return out


def encode_snapshot(entries: Iterable[Tuple[ConnId, Iterable[str]]]) -> bytes:
    """Inverse of decode_snapshot (for tests and fake edges)."""
    out = bytearray()
    for cid, chans in entries:
        chans = list(chans)
        out += cid.to_bytes() + u16(len(chans)) + encode_channels(chans)
    return bytes(out)


# ---- whole messages -------------------------------------------------------------------------

@dataclass
class Message:
    """One decoded message: header fields, meta (ordered dict key -> bytes), payload (bytes,
    or None for types without one)."""

    type: int
    flags: int = 0
    id: ConnId = ZERO_ID
    meta: Dict[str, bytes] = field(default_factory=dict)
    payload: Optional[bytes] = None

    @property
    def name(self) -> str:
        return TYPE_NAMES.get(self.type, f"0x{self.type:02x}")

    @property
    def binary(self) -> bool:
        return bool(self.flags & FLAG_BINARY)

    def text(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """A meta value as UTF-8 text (undecodable bytes replaced), or default."""
        v = self.meta.get(key)
        return default if v is None else v.decode("utf-8", "replace")

    def encode(self) -> List[bytes]:
        """The frames of this message (3 with a payload type, else 2)."""
        frames = [encode_header(self.type, self.flags, self.id), encode_meta(self.meta)]
        if self.type in PAYLOAD_TYPES:
            frames.append(bytes(self.payload or b""))
        return frames


def encode(type_: int, cid: ConnId = ZERO_ID, meta=(), payload: Optional[bytes] = None,
           flags: int = 0) -> List[bytes]:
    """Frames of one message; meta is a dict or (key, value) pairs in order."""
    frames = [encode_header(type_, flags, cid), encode_meta(meta)]
    if type_ in PAYLOAD_TYPES:
        frames.append(bytes(payload or b""))
    elif payload:
        raise ValueError(f"{TYPE_NAMES.get(type_, type_)} has no payload")
    return frames


def decode(frames: Sequence[bytes]) -> Message:
    """Decodes the frames of one message (without the ROUTER's routing id or a SUB topic).
    Raises ProtocolError: bad-frame for a short/long header, wrong magic or a missing or
    extra frame; bad-version; unknown-type; bad-meta."""
    if not frames:
        raise ProtocolError(E_BAD_FRAME, "no frames")
    hdr = decode_header(frames[0])
    want = 3 if hdr.type in PAYLOAD_TYPES else 2
    if len(frames) != want:
        raise ProtocolError(E_BAD_FRAME, f"{TYPE_NAMES[hdr.type]} with {len(frames)} frames, "
                                         f"not {want}", hdr)
    try:
        meta = decode_meta(frames[1])
    except ProtocolError as e:
        e.header = hdr
        raise
    payload = bytes(frames[2]) if want == 3 else None
    return Message(hdr.type, hdr.flags, hdr.id, meta, payload)
