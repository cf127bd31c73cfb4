"""wsedge_backend: write backend services for the wsedge WebSocket edge server in Python.

wsedge bridges WebSocket clients to backends over ZeroMQ (docs/BRIDGE-PROTOCOL.md)::

    from wsedge_backend import Backend

    b = Backend("tcp://127.0.0.1:7001", publish="tcp://127.0.0.1:7002", name="echo")

    @b.on_message
    def message(conn, data, binary):
        b.send(conn, data, binary=binary)

    b.run()

Modules: ``backend`` (Backend, Conn, Edge), ``protocol`` (the codec), ``keys`` (CURVE key
files; ``python3 -m wsedge_backend.keys NAME``), ``zap`` (the allow-list ZAP handler).
"""
from .backend import BY_EDGE_LOST, CODE_EDGE_LOST, Backend, Conn, Edge
from .protocol import ConnId, ProtocolError

__all__ = ["Backend", "Conn", "ConnId", "Edge", "ProtocolError", "BY_EDGE_LOST",
           "CODE_EDGE_LOST"]
__version__ = "0.1.0"
