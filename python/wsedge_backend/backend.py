"""The backend side of the wsedge bridge (docs/BRIDGE-PROTOCOL.md): a ROUTER that wsedge
cores connect to, an optional PUB for channel publishes, and handlers for what the edge
reports about WebSocket connections."""
from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, Union

import zmq

from . import protocol as p
from .protocol import ConnId, ProtocolError
from .zap import ZapHandler

CoreKey = Tuple[int, int, int]  # (node, epoch, core)

#: ``by`` passed to on_close for connections forgotten because their edge core went silent
#: for three BEAT intervals or came back with a new epoch (no CLOSE came from the edge).
BY_EDGE_LOST = "edge-lost"
#: ``code`` passed to on_close with BY_EDGE_LOST (WebSocket "abnormal closure").
CODE_EDGE_LOST = 1006

ZAP_DOMAIN = "wsedge"
ZMQ_ZAP_ENFORCE_DOMAIN = 93  # draft-only name in Debian's libzmq 4.3.4; the option is stable

DEFAULT_BEAT_INTERVAL_MS = 5000  # until a core's BEAT says otherwise (§5.2)


@dataclass(eq=False)
class Conn:
    """One WebSocket connection as its OPEN described it.

    ``id`` is its ConnId (``str(conn.id)`` prints ``node.epoch.core.slot.gen``);
    ``headers`` maps each forwarded header name (the meta key without ``h:``) to its value;
    the identity the edge checked at the upgrade (docs/AUTH.md), from OPEN's meta:
    ``user`` is the token's ``sub`` (None for an anonymous connection), ``roles`` the token's
    roles and those the edge's ACL file gives that user (a list of str, maybe empty), ``exp``
    when the connection expires (int seconds since 1970; None: never; ``expires()`` moves
    it), ``info`` the token's ``info`` claim as a parsed JSON value (None when absent or not
    JSON) and ``info_text`` the same as the raw text the edge sent;
    ``channels`` is the set of channels it is subscribed to, as far as this backend knows
    (OPEN's ``channels`` plus this backend's subscribe/unsubscribe calls);
    ``failover``/``resumed`` tell that its OPEN was a re-routing or a re-announcement;
    ``meta`` is OPEN's raw meta (key -> bytes); ``data`` is a dict for the application."""

    id: ConnId
    path: Optional[str] = None
    peer: Optional[str] = None
    protocol: Optional[str] = None
    headers: Dict[str, str] = field(default_factory=dict)
    user: Optional[str] = None
    roles: List[str] = field(default_factory=list)
    exp: Optional[int] = None
    info: Any = None
    info_text: Optional[str] = None
    channels: Set[str] = field(default_factory=set)
    failover: bool = False
    resumed: bool = False
    meta: Dict[str, bytes] = field(default_factory=dict)
    data: Dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return str(self.id)


@dataclass(eq=False)
class Edge:
    """One edge core (one ROUTER peer), as its HELLO described it."""

    routing_id: bytes
    core_key: Optional[CoreKey] = None
    node_name: str = ""
    cores: int = 0
    version: int = 0
    welcomed: bool = False
    count: int = 0  # events (p.COUNTED_TYPES) handled since our WELCOME
    reported: int = 0  # the count our last RECEIVED carried
    uncounted_since: Optional[float] = None


@dataclass(eq=False)
class _Core:
    routing_id: bytes
    last_heard: float
    interval_ms: int = DEFAULT_BEAT_INTERVAL_MS
    conns: Set[ConnId] = field(default_factory=set)
    draining_ms: Optional[int] = None  # the core said it is stopping (BEAT `draining`)


Target = Union[Conn, ConnId, str, bytes]


def _curve_server(sock, public, secret):
    """A CURVE server socket whose clients the ZAP handler must admit: ZAP_DOMAIN plus option 93
    (ZAP_ENFORCE_DOMAIN), so that without a running handler libzmq refuses instead of admitting
    every client."""
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
    sock.setsockopt(ZMQ_ZAP_ENFORCE_DOMAIN, 1)


class Backend:
    """A wsedge backend: binds a ROUTER at ``endpoint`` (and a PUB at ``publish``), answers
    each edge core's HELLO with WELCOME and hands OPEN/MESSAGE/CLOSE to the handlers.

    Handlers are registered with decorators (one per event; a second replaces the first)::

        @b.on_open                  def f(conn)
        @b.on_message               def f(conn, data: bytes, binary: bool)
        @b.on_client_publish        def f(conn, channel: str, data: bytes, binary: bool)
        @b.on_close                 def f(conn, code: int, reason: str, by: str)
        @b.on_ack                   def f(seq: int, conn_id: ConnId)
        @b.on_error                 def f(seq: Optional[int], code: str, reason: str, conn_id)
        @b.on_snapshot              def f(entries: list[tuple[ConnId, list[str]]])
        @b.on_edge_lost             def f(core_key: tuple[int, int, int])
        @b.on_edge_draining         def f(core_key: tuple[int, int, int], window_ms: int)
        @b.on_hello                 def f(edge: Edge)   # after WELCOME was sent

    ``by`` is ``client``, ``edge`` or ``backend`` as the edge said, or ``"edge-lost"``
    (code 1006) when the library forgot the connection because its edge core stayed silent
    for three BEAT intervals or came back with a new epoch; on_edge_lost runs after those
    on_close calls. A handler that raises is logged and the event still counts as taken.

    on_client_publish gets a client's publish that the edge's ACL allowed (PUBLISH 0x14, on
    routes with ``control=on``: docs/AUTH.md §6); the backend decides whether to fan it out.
    Without that handler the library republishes it on this backend's PUB
    (``publish(channel, data, binary)``), so such a route works out of the box; without a PUB
    it is dropped (counted in ``stats["client_publish_dropped"]``).

    Delivery is at least once (§5.4): after a link break the edge resends what this object
    had not yet counted, so a handler may see an event twice (an OPEN for a known id updates
    that Conn and calls on_open again).

    Commands (send, close, subscribe, unsubscribe, publish, request_snapshot, expires) return
    the ``seq`` of an acknowledged command (ack=True), answered later through on_ack/on_error;
    acl() and its wrappers go to every edge core and return one seq per core.

    Threading: the object is not thread-safe. Run it in one thread (``run()``,
    ``run(stop_event)`` or ``poll_once()`` in your own loop), call commands from handlers or
    that thread, and use ``call_soon(fn, *args)`` or ``stop()`` from other threads.

    CURVE (§10): with ``curve_secret_file`` the ROUTER is a CURVE server using that key pair
    (see wsedge_backend.keys for the file format) and a ZAP handler admits only the edge
    public keys in ``curve_allow`` / ``curve_allow_file``; it fails closed. The PUB socket, if
    any, is a CURVE server behind the same allow-list.
    """

    def __init__(self, endpoint: str, publish: Optional[str] = None, name: str = "wsedge-backend",
                 *, context: Optional[zmq.Context] = None,
                 curve_secret_file: Optional[str] = None, curve_allow: Iterable = (),
                 curve_allow_file: Optional[str] = None,
                 heartbeat_ivl_ms: int = 5000, heartbeat_timeout_ms: int = 15000,
                 heartbeat_ttl_ms: int = 30000, hwm: int = 10000, send_timeout_ms: int = 1000,
                 received_every: int = 64, received_delay: float = 0.020,
                 publisher: Optional[str] = None, logger: Optional[logging.Logger] = None):
        self.name = name
        self.instance = random.SystemRandom().getrandbits(64)
        self.publisher = publisher or (
            f"{name}@{socket.gethostname()}:{os.getpid()}:{self.instance & 0xFFFFFFFF:08x}")
        self.log = logger or logging.getLogger(f"wsedge_backend.{name}")
        self.received_every = received_every
        self.received_delay = received_delay
        self.stats: Dict[str, int] = {}

        self._handlers: Dict[str, Callable] = {}
        self._edges: Dict[bytes, Edge] = {}
        self._cores: Dict[CoreKey, _Core] = {}
        self._epochs: Dict[Tuple[int, int], int] = {}  # (node, core) -> epoch
        self._conns: Dict[ConnId, Conn] = {}
        self._snapshots: Dict[Tuple[bytes, int], list] = {}
        self._seq = 0
        self._pub_seq: Dict[str, int] = {}
        self._calls: deque = deque()
        self._stopping = False
        self._closed = False
        self._zap: Optional[ZapHandler] = None

        self._own_ctx = context is None
        self.context = context or zmq.Context()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.router = self.context.socket(zmq.ROUTER)
        self.pub: Optional[zmq.Socket] = None
        try:
            self._setup(endpoint, publish, curve_secret_file, curve_allow, curve_allow_file,
                        heartbeat_ivl_ms, heartbeat_timeout_ms, heartbeat_ttl_ms, hwm,
                        send_timeout_ms)
        except Exception:
            self.shutdown()
            raise
        self._poller = zmq.Poller()
        self._poller.register(self.router, zmq.POLLIN)
        self._poller.register(self._wake_r, zmq.POLLIN)

    def _setup(self, endpoint, publish, secret_file, allow, allow_file, ivl, timeout, ttl, hwm,
               send_timeout_ms) -> None:
        r = self.router
        r.setsockopt(zmq.LINGER, 0)
        r.setsockopt(zmq.ROUTER_MANDATORY, 1)
        r.setsockopt(zmq.ROUTER_HANDOVER, 1)
        r.setsockopt(zmq.SNDHWM, hwm)
        r.setsockopt(zmq.RCVHWM, hwm)
        r.setsockopt(zmq.SNDTIMEO, send_timeout_ms)
        r.setsockopt(zmq.HEARTBEAT_IVL, ivl)
        r.setsockopt(zmq.HEARTBEAT_TIMEOUT, timeout)
        r.setsockopt(zmq.HEARTBEAT_TTL, ttl)
        if secret_file:
            from .keys import load_allow_list, load_keypair  # here: `-m wsedge_backend.keys`
            public, secret = load_keypair(secret_file)
            allowed = load_allow_list(allow_file, allow)
            if not allowed:
                self.log.warning("CURVE with an empty allow-list: every edge will be refused")
            # The ZAP handler must be bound before the CURVE socket binds.
            self._zap = ZapHandler(self.context, allowed, ZAP_DOMAIN, self.log)
            self._zap.start()
            self._curve = (public, secret)
            _curve_server(r, public, secret)
            self.curve_public_key = public
        elif allow or allow_file:
            raise ValueError("curve_allow needs curve_secret_file")
        r.bind(endpoint)
        self.endpoint = r.getsockopt(zmq.LAST_ENDPOINT).decode()
        if publish:
            self.pub = self.context.socket(zmq.PUB)
            self.pub.setsockopt(zmq.LINGER, 0)
            self.pub.setsockopt(zmq.SNDHWM, hwm)
            self.pub.setsockopt(zmq.HEARTBEAT_IVL, ivl)
            self.pub.setsockopt(zmq.HEARTBEAT_TIMEOUT, timeout)
            self.pub.setsockopt(zmq.HEARTBEAT_TTL, ttl)
            if secret_file:
                # Off this host an edge's SUB speaks CURVE too (§10), through the same ZAP
                # allow-list.
                _curve_server(self.pub, *self._curve)
            self.pub.bind(publish)
            self.publish_endpoint = self.pub.getsockopt(zmq.LAST_ENDPOINT).decode()
        else:
            self.publish_endpoint = None
        self.log.info("backend %s (instance %016x) on %s%s%s", self.name, self.instance,
                      self.endpoint, f", publishing on {self.publish_endpoint}" if publish else "",
                      ", CURVE" if secret_file else "")

    # ---- handlers ---------------------------------------------------------------------------

    def _register(kind):  # noqa: N805 - decorator factory used in the class body
        def register(self, fn):
            self._handlers[kind] = fn
            return fn
        register.__name__ = f"on_{kind}"
        register.__doc__ = f"Decorator: registers the {kind} handler (see the class doc)."
        return register

    on_open = _register("open")
    on_message = _register("message")
    on_client_publish = _register("client_publish")
    on_close = _register("close")
    on_ack = _register("ack")
    on_error = _register("error")
    on_snapshot = _register("snapshot")
    on_edge_lost = _register("edge_lost")
    on_edge_draining = _register("edge_draining")
    on_hello = _register("hello")
    del _register

    def _call(self, kind: str, *args, default: Optional[Callable] = None) -> None:
        fn = self._handlers.get(kind, default)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a handler's bug never ends the loop
            self._count("handler_errors")
            self.log.exception("%s handler raised", kind)

    def _count(self, what: str, n: int = 1) -> None:
        self.stats[what] = self.stats.get(what, 0) + n

    # ---- state ------------------------------------------------------------------------------

    @property
    def connections(self) -> Dict[ConnId, Conn]:
        """The open connections this backend knows, by id (read-only view: do not modify)."""
        return self._conns

    @property
    def edges(self) -> Dict[bytes, Edge]:
        """The edge cores that said HELLO, by routing id."""
        return self._edges

    def conn(self, target: Target) -> Optional[Conn]:
        """The Conn for a Conn, ConnId, printed id or 18-byte id, if it is open."""
        return self._conns.get(self._id(target))

    # ---- loop -------------------------------------------------------------------------------

    def poll_once(self, timeout: Optional[float] = None) -> int:
        """Waits up to ``timeout`` seconds (None: until something happens) for messages, runs
        handlers, due timers (RECEIVED, liveness) and call_soon callbacks. Returns the number
        of messages handled."""
        if self._closed:
            raise RuntimeError("backend closed")
        deadline = self._next_deadline()
        wait = timeout
        if deadline is not None:
            d = max(0.0, deadline - time.monotonic())
            wait = d if wait is None else min(wait, d)
        events = dict(self._poller.poll(None if wait is None else int(wait * 1000 + 0.999)))
        handled = 0
        if self._wake_r in events:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        for _ in range(len(self._calls)):  # what these schedule runs at the next turn
            fn, args = self._calls.popleft()
            try:
                fn(*args)
            except Exception:  # noqa: BLE001
                self.log.exception("call_soon callback raised")
        if self._calls:
            os.write(self._wake_w, b"x")
        if self.router in events:
            for _ in range(1000):  # bounded, so timers still run under a flood
                try:
                    frames = self.router.recv_multipart(zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                handled += 1
                try:
                    self._on_frames(frames)
                except Exception:  # noqa: BLE001 - what an edge sends never ends the loop
                    self._count("internal_errors")
                    self.log.exception("message from edge %r not handled", frames[0])
        self._timers()
        return handled

    def run(self, stop_event: Optional[threading.Event] = None) -> None:
        """Runs until ``stop()`` is called or ``stop_event`` is set (checked every 50 ms),
        or until KeyboardInterrupt. Does not close the backend."""
        self._stopping = False
        try:
            while not self._stopping and not (stop_event and stop_event.is_set()):
                self.poll_once(0.05 if stop_event else None)
        except KeyboardInterrupt:
            self.log.info("interrupted")
        finally:
            self._flush_received()

    def call_soon(self, fn: Callable, *args) -> None:
        """Thread-safe: runs fn(*args) in the loop's thread at its next turn."""
        self._calls.append((fn, args))
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def stop(self) -> None:
        """Thread-safe: makes run() return."""
        def _stop():
            self._stopping = True
        self.call_soon(_stop)

    def close(self, target: Optional[Target] = None, code: int = 1000, reason: str = "",
              ack: bool = False) -> Optional[int]:
        """``close(conn, code=1000, reason="", ack=False)`` asks the edge to close that
        connection (see close_conn); ``close()`` without a connection shuts the backend down
        (see shutdown)."""
        if target is not None:
            return self.close_conn(target, code, reason, ack)
        self.shutdown()
        return None

    def shutdown(self) -> None:
        """Sends the RECEIVED counts still due, closes the sockets (linger 0) and the ZAP
        handler, and terminates the context if this object created it. Idempotent."""
        if self._closed:
            return
        try:
            self._flush_received()
        except Exception:  # noqa: BLE001
            pass
        self._closed = True
        for s in (self.router, self.pub):
            if s is not None:
                s.close(0)
        if self._zap:
            self._zap.stop()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._own_ctx:
            self.context.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    # ---- commands ---------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFFFFFF + 1
        return self._seq

    @staticmethod
    def _id(target: Target) -> ConnId:
        if isinstance(target, Conn):
            return target.id
        if isinstance(target, ConnId):
            return target
        if isinstance(target, str):
            return ConnId.parse(target)
        if isinstance(target, (bytes, bytearray)):
            return ConnId.from_bytes(bytes(target))
        if isinstance(target, tuple) and len(target) == 5:
            return ConnId(*target)
        raise TypeError(f"not a connection: {target!r}")

    def _ids(self, targets) -> List[ConnId]:
        if isinstance(targets, (Conn, ConnId, str, bytes, bytearray)):
            return [self._id(targets)]
        return [self._id(t) for t in targets]

    def _route(self, cid: ConnId) -> Optional[bytes]:
        core = self._cores.get(cid.core_key)
        return core.routing_id if core else None

    def _send(self, routing_id: bytes, frames: List[bytes], seq: Optional[int],
              cid: ConnId) -> bool:
        """Sends on the ROUTER; a core that is gone (ROUTER_MANDATORY) or full (SNDTIMEO) is
        reported through on_error (code gone/full) when the command asked for an ACK."""
        try:
            self.router.send_multipart([routing_id] + frames)
            return True
        except zmq.ZMQError as e:
            code = p.E_FULL if e.errno == zmq.EAGAIN else p.E_GONE
            self._count(f"send_{code}")
            self.log.warning("command for %s to edge %r failed: %s", cid, routing_id, e)
            if seq is not None:
                self.call_soon(self._call, "error", seq, code, f"edge core unreachable: {e}", cid)
            return False

    def _unroutable(self, cid: ConnId, seq: Optional[int]) -> None:
        self._count("send_gone")
        self.log.debug("no edge core known for %s", cid)
        if seq is not None:
            self.call_soon(self._call, "error", seq, p.E_GONE, "no edge core known", cid)

    def _command(self, type_: int, target: Target, meta: list, ack: bool,
                 payload: Optional[bytes] = None, flags: int = 0) -> Optional[int]:
        cid = self._id(target)
        seq = self._next_seq() if ack else None
        if ack:
            flags |= p.FLAG_ACK
            meta = meta + [("seq", p.u32(seq))]
        rid = self._route(cid)
        if rid is None:
            self._unroutable(cid, seq)
        else:
            self._send(rid, p.encode(type_, cid, meta, payload, flags), seq, cid)
        return seq

    def send(self, targets, data: Union[bytes, str], binary: bool = False,
             ack: bool = False):
        """Sends one message to one connection or to many (Conn, ConnId, printed id, or an
        iterable of them). A str is sent UTF-8 encoded. Ids are grouped by the edge core that
        owns them and sent as one SEND per core with up to 128 ``ids``; more are split.

        Returns None without ``ack``; with ``ack`` the seq (int) for a single target, or a
        list with one seq per SEND message for an iterable of targets."""
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        flags = p.FLAG_BINARY if binary else 0
        single = isinstance(targets, (Conn, ConnId, str, bytes, bytearray))
        if single:
            return self._command(p.SEND, targets, [], ack, payload, flags)
        groups: Dict[bytes, List[ConnId]] = {}
        seqs: List[int] = []
        for cid in dict.fromkeys(self._ids(targets)):  # unique, in order
            rid = self._route(cid)
            if rid is None:
                seq = self._next_seq() if ack else None
                self._unroutable(cid, seq)
                if seq is not None:
                    seqs.append(seq)
            else:
                groups.setdefault(rid, []).append(cid)
        for rid, ids in groups.items():
            for i in range(0, len(ids), p.MAX_IDS_PER_SEND):
                chunk = ids[i:i + p.MAX_IDS_PER_SEND]
                meta = [("ids", p.encode_ids(chunk))]
                f = flags
                seq = None
                if ack:
                    seq = self._next_seq()
                    seqs.append(seq)
                    f |= p.FLAG_ACK
                    meta.append(("seq", p.u32(seq)))
                self._send(rid, p.encode(p.SEND, p.ZERO_ID, meta, payload, f), seq, p.ZERO_ID)
        return seqs if ack else None

    def close_conn(self, target: Target, code: int = 1000, reason: str = "",
                   ack: bool = False) -> Optional[int]:
        """Asks the edge to close a connection (CLOSE 0x83). The edge's CLOSE event (by
        ``backend``) follows and reaches on_close."""
        meta = [("code", p.u16(code))]
        if reason:
            meta.append(("reason", reason))
        return self._command(p.CLOSE_COMMAND, target, meta, ack)

    def close_connection(self, *a, **kw):
        """Alias of close_conn()."""
        return self.close_conn(*a, **kw)

    def subscribe(self, target: Target, *channels: str, ack: bool = False) -> Optional[int]:
        """Subscribes a connection to channels (SUBSCRIBE). With ack, the ACK means the edge
        core's table has it and its SUB filter is set (§6)."""
        cid = self._id(target)
        seq = self._command(p.SUBSCRIBE, cid, [("channels", p.encode_channels(channels))], ack)
        conn = self._conns.get(cid)
        if conn:
            conn.channels.update(channels)
        return seq

    def unsubscribe(self, target: Target, *channels: str, ack: bool = False) -> Optional[int]:
        """Unsubscribes a connection from channels (UNSUBSCRIBE)."""
        cid = self._id(target)
        seq = self._command(p.UNSUBSCRIBE, cid, [("channels", p.encode_channels(channels))], ack)
        conn = self._conns.get(cid)
        if conn:
            conn.channels.difference_update(channels)
        return seq

    def publish(self, channel: str, data: Union[bytes, str], binary: bool = False) -> int:
        """Publishes on the PUB socket (§6): topic ``channel\\0``, header PUBLISH, meta
        channel / seq (u64, from 1 per channel) / publisher, payload. Returns the seq."""
        if self.pub is None:
            raise RuntimeError("Backend(publish=ENDPOINT) is needed to publish")
        p.encode_channels([channel])  # validates the name
        seq = self._pub_seq.get(channel, 0) + 1
        self._pub_seq[channel] = seq
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        frames = p.encode(p.PUBLISH, p.ZERO_ID,
                          [("channel", channel), ("seq", p.u64(seq)),
                           ("publisher", self.publisher)],
                          payload, p.FLAG_BINARY if binary else 0)
        self.pub.send_multipart([channel.encode("utf-8") + b"\0"] + frames)
        return seq

    def request_snapshot(self, edge: Optional[Union[Edge, bytes]] = None) -> int:
        """Sends SNAPSHOT? to one edge core (an Edge or routing id) or to every welcomed one;
        the parts' entries reach on_snapshot once the last part is in. Returns the seq."""
        seq = self._next_seq()
        if edge is None:
            rids = [e.routing_id for e in self._edges.values() if e.welcomed]
        else:
            rids = [edge.routing_id if isinstance(edge, Edge) else edge]
        for rid in rids:
            self._send(rid, p.encode(p.SNAPSHOT_REQUEST, p.ZERO_ID, [("seq", p.u32(seq))]),
                       None, p.ZERO_ID)
        return seq

    def expires(self, target: Target, exp: int, ack: bool = False) -> Optional[int]:
        """Moves a connection's expiry (EXPIRES 0x8A, docs/AUTH.md §5): the edge now closes it
        (4401 "token expired") at ``exp``, seconds since 1970, past or short of its token's;
        0 means never. Routed to the connection's core like close_conn; updates
        ``conn.exp``."""
        exp = int(exp)
        if not 0 <= exp <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError(f"exp {exp} is not a u64")
        cid = self._id(target)
        seq = self._command(p.EXPIRES, cid, [("exp", p.u64(exp))], ack)
        conn = self._conns.get(cid)
        if conn:
            conn.exp = exp or None
        return seq

    def acl(self, op: str, *, user: Optional[str] = None, role: Optional[str] = None,
            roles: Iterable[str] = (), parents: Iterable[str] = (),
            resources: Iterable[str] = (), permissions: Iterable[str] = (),
            ack: bool = False) -> Optional[List[int]]:
        """A live ACL change (ACL 0x89, docs/AUTH.md §6), sent to every edge core that has
        said HELLO: each core applies only the changes that reach it. ``op`` is one of
        p.ACL_OPS, and takes exactly the fields listed there (a list given as one str is one
        name; names are 1-255 bytes of UTF-8); anything else is a ValueError here, before
        any core sees it. A change a core cannot apply (a role cycle, no ``--acl``) comes back
        as ``on_error(seq, "bad-acl", ...)`` when ``ack``.

        Returns None, or with ``ack`` one seq per core it was sent to. A core that says HELLO
        later (a new or restarted edge) does not get earlier changes, and a reload of the
        edge's ACL file replaces them: changes meant to last belong in that file too."""
        need = p.ACL_OPS.get(op)
        if need is None:
            raise ValueError(f"unknown ACL op {op!r}: one of {', '.join(p.ACL_OPS)}")
        given = {}
        for key, name, most in (("user", user, 256), ("role", role, 255)):  # sub: 1-256 B
            if name is not None:
                if not 1 <= len(name.encode("utf-8")) <= most:
                    raise ValueError(f"ACL {key} {name!r}: not 1-{most} bytes")
                given[key] = name
        for key, names in (("roles", roles), ("parents", parents), ("resources", resources),
                           ("permissions", permissions)):
            names = [names] if isinstance(names, str) else list(names)
            if names:
                given[key] = p.encode_names(names, f"ACL {key[:-1]}")
        missing = [k for k in need if k not in given]
        extra = [k for k in given if k not in need]
        if missing or extra:
            raise ValueError(f"ACL op {op} takes {', '.join(need)}"
                             + (f"; missing {', '.join(missing)}" if missing else "")
                             + (f"; not {', '.join(extra)}" if extra else ""))
        meta = [("op", op)] + list(given.items())
        rids = [e.routing_id for e in self._edges.values() if e.welcomed]
        if not rids:
            self.log.warning("ACL %s reached no edge core: none has said HELLO", op)
        seqs = []
        for rid in rids:
            seq, flags, m = None, 0, meta
            if ack:
                seq, flags = self._next_seq(), p.FLAG_ACK
                m = meta + [("seq", p.u32(seq))]
                seqs.append(seq)
            self._send(rid, p.encode(p.ACL, p.ZERO_ID, m, None, flags), seq, p.ZERO_ID)
        return seqs if ack else None

    def add_user_roles(self, user: str, *roles: str, ack: bool = False):
        """acl("add-user-roles"): gives ``user`` these roles beside its token's."""
        return self.acl("add-user-roles", user=user, roles=roles, ack=ack)

    def remove_user_roles(self, user: str, *roles: str, ack: bool = False):
        """acl("remove-user-roles")."""
        return self.acl("remove-user-roles", user=user, roles=roles, ack=ack)

    def remove_user(self, user: str, ack: bool = False):
        """acl("remove-user"): forgets the roles the ACL gives ``user``."""
        return self.acl("remove-user", user=user, ack=ack)

    def allow(self, roles, resources, permissions, ack: bool = False):
        """acl("allow"): ``roles`` may do ``permissions`` on ``resources`` (lists, or one
        str each)."""
        return self.acl("allow", roles=roles, resources=resources, permissions=permissions,
                        ack=ack)

    def deny(self, roles, resources, permissions, ack: bool = False):
        """acl("deny"): wins over every allow."""
        return self.acl("deny", roles=roles, resources=resources, permissions=permissions,
                        ack=ack)

    def remove_allow(self, roles, resources, permissions, ack: bool = False):
        """acl("remove-allow")."""
        return self.acl("remove-allow", roles=roles, resources=resources,
                        permissions=permissions, ack=ack)

    def remove_deny(self, roles, resources, permissions, ack: bool = False):
        """acl("remove-deny")."""
        return self.acl("remove-deny", roles=roles, resources=resources,
                        permissions=permissions, ack=ack)

    def add_role_parents(self, role: str, *parents: str, ack: bool = False):
        """acl("add-role-parents"): ``role`` inherits every grant of ``parents``."""
        return self.acl("add-role-parents", role=role, parents=parents, ack=ack)

    def remove_role_parents(self, role: str, *parents: str, ack: bool = False):
        """acl("remove-role-parents")."""
        return self.acl("remove-role-parents", role=role, parents=parents, ack=ack)

    def remove_role(self, role: str, ack: bool = False):
        """acl("remove-role")."""
        return self.acl("remove-role", role=role, ack=ack)

    # ---- incoming ---------------------------------------------------------------------------

    def _reply_error(self, rid: bytes, code: str, reason: str, cid: ConnId = p.ZERO_ID,
                     seq: Optional[int] = None) -> None:
        meta = [("seq", p.u32(seq))] if seq is not None else []
        meta += [("code", code), ("reason", reason[:1000])]
        try:
            self.router.send_multipart([rid] + p.encode(p.ERROR, cid, meta), zmq.NOBLOCK)
        except zmq.ZMQError as e:
            self.log.debug("could not answer ERROR to %r: %s", rid, e)

    def _on_frames(self, frames: List[bytes]) -> None:
        if len(frames) < 2:
            self._count("bad-frame")
            return
        rid, body = frames[0], frames[1:]
        try:
            msg = p.decode(body)
            if msg.type not in p.UP_TYPES:
                raise ProtocolError(p.E_UNKNOWN_TYPE,
                                    f"{msg.name} is not sent to backends", p.Header(msg.type))
        except ProtocolError as e:
            self._count(e.code)
            self.log.warning("from edge %r: %s", rid, e)
            hdr = e.header
            if hdr is not None and hdr.type in p.COUNTED_TYPES:
                # Refused, but taken: RECEIVED counts a prefix of the edge's events, and
                # resending a malformed event would not mend it.
                self._counted(rid)
            if hdr is not None and hdr.type in (p.ACK, p.ERROR):
                return  # never answer an answer: two peers could loop
            seq = None
            if len(body) > 1:
                try:
                    v = p.decode_meta(body[1]).get("seq")
                    seq = p.read_u32(v) if v is not None and len(v) == 4 else None
                except ProtocolError:
                    pass
            self._reply_error(rid, e.code, e.reason, hdr.id if hdr else p.ZERO_ID, seq)
            return
        try:
            self._dispatch(rid, msg)
        except ProtocolError as e:
            self._count(e.code)
            self.log.warning("from edge %r, %s: %s", rid, msg.name, e)
            if msg.type not in (p.ACK, p.ERROR):
                v = msg.meta.get("seq")
                seq = p.read_u32(v) if v is not None and len(v) == 4 else None
                self._reply_error(rid, e.code, e.reason, msg.id, seq)
            if msg.type in p.COUNTED_TYPES:
                self._counted(rid)  # refused but taken, as above

    def _edge(self, rid: bytes) -> Edge:
        edge = self._edges.get(rid)
        if edge is None:
            edge = self._edges[rid] = Edge(rid)
        return edge

    def _touch(self, key: CoreKey, rid: bytes) -> _Core:
        """Notes that core `key` spoke through `rid`; a new epoch for the same node and core
        forgets the old epoch's connections (§5.2)."""
        node, epoch, core_no = key
        old = self._epochs.get((node, core_no))
        if old is not None and old != epoch:
            self._forget((node, old, core_no), f"new epoch {epoch:x}")
        self._epochs[(node, core_no)] = epoch
        core = self._cores.get(key)
        now = time.monotonic()
        if core is None:
            core = self._cores[key] = _Core(rid, now)
        core.routing_id = rid
        core.last_heard = now
        return core

    def _forget(self, key: CoreKey, why: str) -> None:
        core = self._cores.pop(key, None)
        if core is None:
            return
        if self._epochs.get((key[0], key[2])) == key[1]:
            del self._epochs[(key[0], key[2])]
        self.log.warning("edge core %x.%x.%x lost (%s): forgetting %d connections",
                         *key, why, len(core.conns))
        self._count("edges_lost")
        for cid in sorted(core.conns):
            conn = self._conns.pop(cid, None)
            if conn is not None:
                self._call("close", conn, CODE_EDGE_LOST, why, BY_EDGE_LOST)
        self._call("edge_lost", key)

    def _dispatch(self, rid: bytes, msg: p.Message) -> None:
        t = msg.type
        edge = self._edges.get(rid)
        if edge is not None and edge.core_key is not None and t not in (p.HELLO, p.BEAT):
            core = self._cores.get(edge.core_key)
            if core is not None:
                core.last_heard = time.monotonic()
        if t == p.HELLO:
            self._on_hello(rid, msg)
        elif t == p.BEAT:
            core = self._touch(msg.id.core_key, rid)
            iv = msg.meta.get("interval")
            if iv is not None:
                core.interval_ms = max(1, p.read_u32(iv, "interval"))
            edge = self._edge(rid)
            edge.core_key = msg.id.core_key
            dr = msg.meta.get("draining")
            if dr is not None and core.draining_ms is None:
                core.draining_ms = p.read_u32(dr, "draining")
                self._call("edge_draining", msg.id.core_key, core.draining_ms)
        elif t in p.COUNTED_TYPES:
            self._on_event(rid, msg)
        elif t == p.SNAPSHOT:
            self._on_snapshot_part(rid, msg)
        elif t == p.ACK:
            seq = msg.meta.get("seq")
            self._count("acks")
            self._call("ack", p.read_u32(seq, "seq") if seq is not None else None, msg.id)
        elif t == p.ERROR:
            seq = msg.meta.get("seq")
            self._count("errors_received")
            code, reason = msg.text("code", ""), msg.text("reason", "")
            self.log.debug("ERROR %s from edge %r: %s", code, rid, reason)
            self._call("error", p.read_u32(seq, "seq") if seq is not None else None, code,
                       reason, msg.id)

    def _on_hello(self, rid: bytes, msg: p.Message) -> None:
        versions = msg.meta.get("versions", b"")
        node_name = msg.text("node", "")
        cores = p.read_u16(msg.meta["cores"], "cores") if "cores" in msg.meta else 0
        if p.VERSION not in versions:
            self.log.error("edge %r (%s) offers versions %s, not %d", rid, node_name,
                           list(versions), p.VERSION)
            self._reply_error(rid, p.E_BAD_VERSION, f"this backend speaks version {p.VERSION}")
            return
        key = msg.id.core_key
        self._touch(key, rid)
        edge = self._edge(rid)
        edge.core_key, edge.node_name, edge.cores = key, node_name, cores
        edge.version, edge.welcomed = p.VERSION, True
        edge.count = edge.reported = 0
        edge.uncounted_since = None
        self._send(rid, p.encode(p.WELCOME, p.ZERO_ID,
                                 [("version", p.u8(p.VERSION)), ("backend", self.name),
                                  ("instance", p.u64(self.instance))]), None, p.ZERO_ID)
        self.log.info("edge %r (node %s, core %x.%x.%x) welcomed", rid, node_name, *key)
        self._call("hello", edge)

    def _on_event(self, rid: bytes, msg: p.Message) -> None:
        cid = msg.id
        if cid.is_zero():
            raise ProtocolError(p.E_BAD_FRAME, f"{msg.name} without a connection id")
        m = msg.meta
        # Check meta before anything is handed over or changed: a refused event must not leave
        # a half-updated Conn behind.
        if msg.type == p.CLOSE:
            code = p.read_u16(m["code"], "code") if "code" in m else 1005
        elif msg.type == p.OPEN:
            channels = set(p.decode_channels(m["channels"])) if "channels" in m else None
            roles = p.decode_names(m["roles"]) if "roles" in m else []
            exp = p.read_u64(m["exp"], "exp") if "exp" in m else 0
        elif msg.type == p.CLIENT_PUBLISH:
            channel = msg.text("channel")
            if not channel:
                raise ProtocolError(p.E_BAD_META, "PUBLISH without a channel")
        core = self._touch(cid.core_key, rid)
        conn = self._conns.get(cid)
        if msg.type == p.OPEN:
            if conn is None:
                conn = self._conns[cid] = Conn(cid)
            conn.path, conn.peer = msg.text("path"), msg.text("peer")
            conn.protocol = msg.text("protocol")
            conn.headers = {k[2:]: v.decode("utf-8", "replace") for k, v in m.items()
                            if k.startswith("h:")}
            conn.user, conn.roles, conn.exp = msg.text("sub"), roles, exp or None
            conn.info_text, conn.info = msg.text("info"), None
            if conn.info_text is not None:
                try:
                    conn.info = json.loads(conn.info_text)
                except ValueError:
                    # The edge copies the token's claim; a bad one must not cost the OPEN.
                    self._count("bad_info")
                    self.log.warning("OPEN of %s: info is not JSON", cid)
            if channels is not None:
                conn.channels = channels
            conn.failover, conn.resumed = "failover" in m, "resumed" in m
            conn.meta = dict(m)
            core.conns.add(cid)
            self._call("open", conn)
        elif msg.type == p.CLOSE:
            if conn is None:
                conn = Conn(cid)
            self._conns.pop(cid, None)
            core.conns.discard(cid)
            self._call("close", conn, code, msg.text("reason", ""), msg.text("by", ""))
        else:
            if conn is None:  # its OPEN went to a backend instance before us: adopt it
                self.log.debug("%s for %s without OPEN", msg.name, cid)
                conn = self._conns[cid] = Conn(cid)
                core.conns.add(cid)
            if msg.type == p.MESSAGE:
                self._call("message", conn, msg.payload, msg.binary)
            else:
                self._call("client_publish", conn, channel, msg.payload, msg.binary,
                           default=self._republish)
        self._counted(rid)

    def _republish(self, conn: Conn, channel: str, data: bytes, binary: bool) -> None:
        """on_client_publish when none is registered: fan the publish out on our PUB."""
        if self.pub is None:
            self._count("client_publish_dropped")
            self.log.debug("publish of %s on %s dropped: no PUB and no on_client_publish",
                           conn.id, channel)
            return
        self.publish(channel, data, binary)

    def _counted(self, rid: bytes) -> None:
        """One event (OPEN, MESSAGE, CLOSE, PUBLISH) has been handled: RECEIVED every `received_every` events,
        and `received_delay` after the first one not yet counted (§5.4)."""
        edge = self._edges.get(rid)
        if edge is None or not edge.welcomed:
            self._count("events_before_welcome")
            return
        edge.count += 1
        if edge.count - edge.reported >= self.received_every:
            self._send_received(edge)
        elif edge.uncounted_since is None:
            edge.uncounted_since = time.monotonic()

    def _send_received(self, edge: Edge) -> None:
        edge.reported = edge.count
        edge.uncounted_since = None
        self._send(edge.routing_id,
                   p.encode(p.RECEIVED, p.ZERO_ID, [("count", p.u64(edge.count))]),
                   None, p.ZERO_ID)

    def _flush_received(self) -> None:
        for edge in self._edges.values():
            if edge.welcomed and edge.count != edge.reported:
                self._send_received(edge)

    def _on_snapshot_part(self, rid: bytes, msg: p.Message) -> None:
        seq = p.read_u32(msg.meta["seq"], "seq") if "seq" in msg.meta else 0
        entries = p.decode_snapshot(msg.payload or b"")
        key = (rid, seq)
        if len(self._snapshots) > 64 and key not in self._snapshots:
            self._snapshots.pop(next(iter(self._snapshots)))  # bound abandoned ones
        self._snapshots.setdefault(key, []).extend(entries)
        for cid, chans in entries:
            conn = self._conns.get(cid)
            if conn is not None:
                conn.channels = set(chans)
        if "last" in msg.meta:
            self._call("snapshot", self._snapshots.pop(key))

    # ---- timers -----------------------------------------------------------------------------

    def _next_deadline(self) -> Optional[float]:
        ds = [e.uncounted_since + self.received_delay for e in self._edges.values()
              if e.uncounted_since is not None]
        ds += [c.last_heard + 3 * c.interval_ms / 1000 for c in self._cores.values()]
        return min(ds) if ds else None

    def _timers(self) -> None:
        now = time.monotonic()
        for edge in list(self._edges.values()):
            if edge.uncounted_since is not None and now >= edge.uncounted_since + self.received_delay:
                self._send_received(edge)
        for key, core in list(self._cores.items()):
            if now >= core.last_heard + 3 * core.interval_ms / 1000:
                self._forget(key, f"silent for {3 * core.interval_ms} ms")
