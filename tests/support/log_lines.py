"""wsedge's stderr log lines (docs/OPERATIONS.md §2) as dicts, in either format: JSON lines (the
default) or logfmt (--log-format logfmt). The suites read counters from the exit summaries
("core_stopped", "bridge_stopped") through here, so they pass whichever format a server used.
"""
import json
import re

# key=value, the value bare or quoted with JSON's escapes (which is what wsedge writes).
_LOGFMT_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)')


def _scalar(v):
    if v in ("true", "false"):
        return v == "true"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def parse_line(line):
    """The line's fields as a dict, or None for a line that is not a log line (the "wsedge: ..."
    start-up errors). Raises ValueError for a JSON line that does not parse."""
    line = line.strip()
    if line.startswith("{"):
        return json.loads(line)
    if line.startswith("ts="):
        return {k: json.loads(v) if v.startswith('"') else _scalar(v)
                for k, v in _LOGFMT_PAIR.findall(line)}
    return None


def events(log, event=None):
    """Every log line of `log` (a whole stderr), or those of one event, parsed."""
    for line in log.splitlines():
        fields = parse_line(line)
        if fields is not None and (event is None or fields.get("event") == event):
            yield fields


def sum_counters(log, names, event):
    """Sums, over the lines of `event` (one per core), the integer fields whose names match the
    regular expression `names`."""
    pattern = re.compile(rf"(?:{names})\Z")
    total = {}
    for fields in events(log, event):
        for name, value in fields.items():
            if pattern.match(name) and isinstance(value, int) and not isinstance(value, bool):
                total[name] = total.get(name, 0) + value
    return total
