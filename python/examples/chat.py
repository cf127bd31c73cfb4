#!/usr/bin/env python3
"""Chat rooms as channels "room:NAME"; usage: chat.py [ENDPOINT [PUBLISH_ENDPOINT]] (default
tcp://127.0.0.1:7001 tcp://127.0.0.1:7002). Clients start in "lobby" as their token's user
or guest-N; "/join ROOM"
moves one, "/nick NAME" renames it; other text goes to its room as {"type":"message","room",
"from","text"}; joins, leaves and renames as {"type":"system","room","text"}."""
import json, logging, os, re, signal, sys  # noqa: E401
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from wsedge_backend import Backend  # noqa: E402


def make_backend(endpoint="tcp://127.0.0.1:7001", publish="tcp://127.0.0.1:7002"):
    b = Backend(endpoint, publish=publish, name="chat")

    def say(room, **msg):
        b.publish("room:" + room, json.dumps(dict(msg, room=room)))

    def join(conn, room):
        old, nick = conn.data.get("room"), conn.data["nick"]
        if old:
            b.unsubscribe(conn, "room:" + old)
            say(old, type="system", text=f"{nick} left")
        conn.data["room"] = room
        b.subscribe(conn, "room:" + room)
        say(room, type="system", text=f"{nick} joined")

    @b.on_open
    def opened(conn):
        conn.data["nick"] = conn.user or f"guest-{conn.id.slot:x}"  # the token's sub, if any
        rooms = sorted(c[5:] for c in conn.channels if c.startswith("room:"))
        conn.data["room"] = rooms[0] if rooms else None  # resumed/failed over: keeps its room
        if not rooms:
            join(conn, "lobby")

    @b.on_message
    def message(conn, data, binary):
        text, nick = data.decode("utf-8", "replace"), conn.data.setdefault("nick", "guest")
        room, (cmd, _, arg) = conn.data.setdefault("room", "lobby"), text.partition(" ")
        if cmd in ("/join", "/nick") and not re.fullmatch(r"[\w-]{1,32}", arg):
            b.send(conn, json.dumps({"type": "system", "room": room, "text": "bad name"}))
        elif cmd == "/join" and arg != room:
            join(conn, arg)
        elif cmd == "/nick":
            conn.data["nick"] = arg
            say(room, type="system", text=f"{nick} is now {arg}")
        elif not binary and cmd != "/join":
            say(room, type="message", **{"from": nick, "text": text})

    @b.on_close
    def closed(conn, code, reason, by):
        if "room" in conn.data:
            say(conn.data["room"], type="system", text=f"{conn.data['nick']} left")
    return b


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with make_backend(*sys.argv[1:3]) as b:
        signal.signal(signal.SIGTERM, lambda *_: b.stop())
        b.run()
