"""Writes wsedge(1) from `wsedge --help`, so the man page lists exactly the binary's flags.

usage: make_man.py WSEDGE VERSION OUTPUT
"""
import re
import subprocess
import sys


def roff(text):
    """Escapes text for a roff line: backslashes, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def main(argv):
    binary, version, output = argv[1], argv[2], argv[3]
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    usage = [l for l in lines if l.startswith(("usage:", "       wsedge"))]
    prose = [l for l in lines[len(usage):] if l and not l.startswith("  ")]
    flags = [l for l in lines if l.startswith("  -")]
    page = [
        f'.TH WSEDGE 1 "" "wsedge {version}" "User Commands"',
        ".SH NAME",
        "wsedge \\- WebSocket edge server on io_uring, bridging clients to backends over ZeroMQ",
        ".SH SYNOPSIS",
    ]
    for u in usage:
        page += [".nf", roff(re.sub(r"^(usage:)?\s*", "", u)), ".fi"]
    page += [".SH DESCRIPTION"] + [roff(p) for p in prose]
    page += [".SH OPTIONS"]
    for f in flags:
        m = re.match(r"\s+(--\S+)(?: (\S+))?\s{2,}(.*)", f)
        if not m:
            continue
        name, arg, text = m.groups()
        page += [".TP", f"\\fB{roff(name)}\\fR" + (f" \\fI{roff(arg)}\\fR" if arg else ""), roff(text)]
    page += [
        ".SH SIGNALS",
        ".TP", "SIGHUP", "Reload the configuration, certificates, token keys and ACL as one snapshot.",
        ".TP", "SIGTERM", "Drain: stop accepting, close clients with 1001 spread over "
        "\\-\\-drain\\-timeout, then exit.",
        ".TP", "SIGINT", "Stop now: every client gets 1001 at once.",
        ".SH SEE ALSO",
        "docs/OPERATIONS.md, docs/BRIDGE\\-PROTOCOL.md and docs/AUTH.md in the source tree.",
    ]
    with open(output, "w") as f:
        f.write("\n".join(page) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
