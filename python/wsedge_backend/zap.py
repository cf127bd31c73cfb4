"""A ZAP handler (ZeroMQ RFC 27) that admits CURVE clients by public key and fails closed.

libzmq asks the handler bound at ``inproc://zeromq.zap.01`` *in the same context* about
every handshake on a socket with a ZAP domain. Without a handler a CURVE server admits any
client that knows its public key, unless the socket sets ZAP_ENFORCE_DOMAIN (option 93),
which the Backend does. This handler answers 200 only for mechanism CURVE, the expected
domain and a client key on the allow-list; anything else, including a malformed request or
an exception, is answered 400.
"""
from __future__ import annotations

import logging
import threading
from typing import Iterable, Optional

import zmq
import zmq.utils.z85

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class ZapHandler:
    """Runs in its own thread. ``start()`` returns once the REP socket is bound, so call it
    before binding the CURVE server socket. ``stop()`` ends the thread and closes the socket.

    :param context: the zmq.Context of the sockets to guard.
    :param allowed: Z85 public keys (bytes or str) that may connect.
    :param domain: the ZAP domain the guarded socket sets (others are refused).
    """

    def __init__(self, context: zmq.Context, allowed: Iterable, domain: str = "wsedge",
                 logger: Optional[logging.Logger] = None):
        self._ctx = context
        self._allowed = frozenset(
            zmq.utils.z85.decode(k.encode() if isinstance(k, str) else k) for k in allowed)
        self._domain = domain.encode()
        self._log = logger or logging.getLogger("wsedge_backend.zap")
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="wsedge-zap", daemon=True)
        self.accepted = 0
        self.refused = 0

    def start(self, timeout: float = 5.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("ZAP handler did not start")
        if self._error is not None:
            raise RuntimeError(f"ZAP handler could not bind {ZAP_ENDPOINT}: {self._error}")

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _decide(self, frames) -> tuple:
        """(status, text, user_id) for one request; frames per RFC 27."""
        if len(frames) < 6 or frames[0] != b"1.0":
            return b"400", b"malformed ZAP request", b""
        domain, mechanism, credentials = frames[2], frames[5], frames[6:]
        if mechanism != b"CURVE":
            return b"400", b"only CURVE is accepted", b""
        if domain != self._domain:
            return b"400", b"unknown ZAP domain", b""
        if len(credentials) != 1 or len(credentials[0]) != 32:
            return b"400", b"malformed CURVE credentials", b""
        if credentials[0] not in self._allowed:
            return b"400", b"client key not allowed", b""
        return b"200", b"OK", zmq.utils.z85.encode(credentials[0])

    def _run(self) -> None:
        try:
            sock = self._ctx.socket(zmq.REP)
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(ZAP_ENDPOINT)
        except Exception as e:  # noqa: BLE001 - reported by start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not sock.poll(100):
                    continue
                frames = sock.recv_multipart()
                request_id = frames[1] if len(frames) > 1 else b""
                try:
                    status, text, user = self._decide(frames)
                except Exception:  # noqa: BLE001 - fail closed
                    self._log.exception("ZAP request refused after an error")
                    status, text, user = b"400", b"internal error", b""
                if status == b"200":
                    self.accepted += 1
                    self._log.info("ZAP: admitted CURVE client %s", user.decode())
                else:
                    self.refused += 1
                    self._log.warning("ZAP: refused %s (%s)",
                                      frames[3].decode("ascii", "replace") if len(frames) > 3
                                      else "?", text.decode())
                sock.send_multipart([b"1.0", request_id, status, text, user, b""])
        except zmq.ContextTerminated:
            pass
        except Exception:  # noqa: BLE001
            self._log.exception("ZAP handler stopped after an error; CURVE clients now fail")
        finally:
            sock.close(0)
