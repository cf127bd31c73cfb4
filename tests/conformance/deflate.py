"""permessage-deflate (RFC 7692, docs/DEFLATE.md) of a running wsedge, over real sockets.

Autobahn's cases 12 and 13 in kind, byte by byte: the exact Sec-WebSocket-Extensions answer to
offers valid and invalid, in every mode; compressed echoes of every size, fragmented, with
control frames between the fragments, at every server window; context takeover both ways;
RSV bits where they do not belong, corrupt data, invalid UTF-8 and decompression bombs with
their exact close codes; the server's memory under a bomb and its /metrics. The client's side
is Python's zlib (raw deflate, wbits=-N). The framing, the Client and the runner are
conformance.py's. Python standard library only.

usage: deflate.py PATH_TO_WSEDGE [--tls] [-k SUBSTRING]

What is a valid offer (RFC 7692 §7.1 and docs/DEFLATE.md §2), as these cases decide it:
parameters are the four of §7.1, each at most once (§7.1: "MUST NOT include more than one");
the *_no_context_takeover ones take no value; server_max_window_bits takes a value, and
client_max_window_bits may, that is a decimal integer 8..15 *without leading zeroes*
(§7.1.2.1/§7.1.2.2: "1*DIGIT" and "a decimal integer value without leading zeroes"), quoted
or not (§7.1: "the value ... MUST be the same with or without quotes"); so "010" and "08" are
declined. A declined offer is skipped and the next permessage-deflate offer is considered;
none acceptable is a 101 without the header (§5: declining is not failing). The answer's
parameters are compared as bytes, in the one order wsedge writes them in every mode:
server_no_context_takeover, client_no_context_takeover, server_max_window_bits,
client_max_window_bits (RFC 7692 gives them no order; a fixed one keeps answers comparable).
"""
import os
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conformance  # noqa: E402
from conformance import Client, build_frame, close_payload, request, run  # noqa: E402
from wsedge_server import admin_url, host_port, make_cert, start_server  # noqa: E402

TAIL = b"\x00\x00\xff\xff"  # what a sync flush ends with; RFC 7692 §7.2.1 removes it on the wire
RSV1 = 4  # in build_frame's rsv (bits 6..4 of the first byte): RSV1 is the highest
NO_CTX = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
MIN_SIZE = 64  # --deflate-min-size's default
MAX_MESSAGE = 1 << 20  # the limits server's --max-message

GROUPS = {"default": [], "context": [], "budget": [], "off": [], "limits": []}
SERVER = {}  # the running group's server: "proc", "admin" (limits only)


def case(group, name):
    def register(fn):
        GROUPS[group].append((name, fn))
        return fn
    return register


# ---------------------------------------------------------------- payloads
def json_text(n, seed=0):
    """n bytes of JSON-like text: what a feed sends, and what deflate is for."""
    out, i = [], seed
    size = 0
    while size < n:
        rec = '{"id":%d,"user":"user%d","score":%d,"tags":["alpha","beta"]},' % (i, i % 7, i * 37 % 1000)
        out.append(rec)
        size += len(rec)
        i += 1
    return "".join(out).encode()[:n]


def far_repeats(n):
    """At least n bytes that compress within any window (repeated keys on every line) yet whose
    second half repeats the first at a distance of n/2: a compressor with a larger window than
    negotiated would refer back that far, which an inflater of the negotiated window refuses."""
    half, i = [], 0
    size = 0
    while size < n // 2 + 64:
        line = b'{"seq":%d,"id":"%s","kind":"tick"}\n' % (i, os.urandom(6).hex().encode())
        half.append(line)
        size += len(line)
        i += 1
    return b"".join(half) * 2


def deflate(data, bits=15, final=False):
    """One message compressed on its own: sync flush with the tail stripped (what browsers
    send), or ending in a final block (RFC 7692 §7.2.3.4)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -bits)
    if final:
        return c.compress(data) + c.flush()
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate_strict(payload, bits, d=None, step=16):
    """Inflates one message with a raw inflater of exactly 2^bits window, fed `step` bytes of
    output at a time: zlib only checks a distance against its window when the distance reaches
    past the current output buffer, so a large buffer would hide a reference the window does
    not hold ("invalid distance too far back"). `d`: an inflater kept across messages (context
    takeover)."""
    d = d or zlib.decompressobj(wbits=-bits)
    out, data = [], payload + TAIL
    while True:
        chunk = d.decompress(data, step)
        out.append(chunk)
        data = d.unconsumed_tail
        if d.eof:  # a final block: nothing may follow it but the tail we appended, after the
            # one 0x00 with which it forms an empty stored block (for Chromium, DEFLATE.md §3)
            assert d.unused_data in (TAIL, b"\x00" + TAIL), f"{d.unused_data[:-4]!r} after the final block"
            break
        if not data and not chunk:  # (zlib may still hold output when the input is used up)
            break
    return b"".join(out)


# ---------------------------------------------------------------- the client
def offer_request(offers, path="/"):
    """The upgrade request with one Sec-WebSocket-Extensions header per element of `offers`."""
    head = request(path)[:-2]  # without the empty line that ends it
    return head + "".join(f"Sec-WebSocket-Extensions: {o}\r\n" for o in offers) + "\r\n"


class DClient(Client):
    """conformance.Client with an offer, the answer to it, and compressed messages."""

    def __init__(self, addr, *offers):
        super().__init__(addr, handshake=False)
        self.send(offer_request(offers).encode())
        status, headers = self.read_http()
        assert status == 101, f"handshake answered {status}"
        answers = [h.split(":", 1)[1].strip() for h in headers
                   if h.lower().startswith("sec-websocket-extensions:")]
        assert len(answers) <= 1, f"several extension answers: {answers}"
        self.answer = answers[0] if answers else None

    def send_msg(self, opcode, data, compress=True, bits=15, final=False, stream=None):
        """One message in one frame; compressed (RSV1) unless compress is False. stream: a
        zlib compressobj kept across messages (context takeover)."""
        if not compress:
            self.frame(opcode, data)
            return b""
        if stream:
            payload = stream.compress(data) + stream.flush(zlib.Z_SYNC_FLUSH)
            assert payload.endswith(TAIL)
            payload = payload[:-4]
        else:
            payload = deflate(data, bits, final)
        self.frame(opcode, payload, rsv=RSV1)
        return payload

    def recv_msg(self, bits=15, inflater=None):
        """The next data message: (opcode, compressed?, inflated data, payload on the wire).
        A compressed reply must inflate with a window of 2^bits (a fresh inflater unless
        `inflater` carries the server's context)."""
        fin, rsv, op, payload = self.read_frame()
        assert op in (1, 2), f"opcode {op}, wanted a data message"
        assert fin, "a fragmented reply"
        assert rsv in (0, RSV1), f"reply rsv={rsv}"
        if rsv != RSV1:
            return op, False, payload, payload
        try:
            return op, True, inflate_strict(payload, bits, inflater, step=4096 if bits == 15 else 16), payload
        except zlib.error as e:
            raise AssertionError(f"reply does not inflate with a {bits}-bit window: {e}") from None

    def echo(self, opcode, data, want_compressed, **kw):
        """Sends `data` (compressed unless compress=False) and checks the echo, and whether it
        came compressed; returns the reply's payload on the wire."""
        bits = kw.pop("reply_bits", 15)
        inflater = kw.pop("inflater", None)
        self.send_msg(opcode, data, **kw)
        op, compressed, got, wire = self.recv_msg(bits, inflater)
        assert op == opcode, f"echo opcode {op}, sent {opcode}"
        assert got == data, f"echo differs: {len(got)} bytes back for {len(data)} sent"
        if want_compressed is not None:
            assert compressed == want_compressed, \
                f"{len(data)}-byte echo {'was' if compressed else 'was not'} compressed"
        return wire

    def bye(self):
        self.frame(8, close_payload(1000))
        self.expect_close(1000, answer=False)


def answer_to(addr, *offers):
    c = DClient(addr, *offers)
    c.close()
    return c.answer


def negotiation(group, name, offers, want):
    """A case: `offers` (one header each) must get exactly `want` (None: no header)."""
    def run_case(addr):
        got = answer_to(addr, *offers)
        assert got == want, f"offer {offers!r} answered {got!r}, expected {want!r}"
    case(group, f"negotiation: {name} -> {want}")(run_case)


def expect_failure(group, name, code, offer, *frames):
    """A case: after `offer`, the frames in one write must close the connection with `code`."""
    def run_case(addr):
        c = DClient(addr, *([offer] if offer else []))
        c.send(b"".join(frames))
        c.expect_close(code)
    case(group, f"{name} -> {code}")(run_case)


# ---------------------------------------------------------------- negotiation
# Offers wsedge declines (RFC 7692 §7.1; see the module's docstring), by what is wrong with them.
INVALID_OFFERS = [
    ("unknown parameter", "permessage-deflate; foo"),
    ("unknown parameter with a value", "permessage-deflate; foo=1"),
    ("duplicate server_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
    ("duplicate client_no_context_takeover",
     "permessage-deflate; client_no_context_takeover; client_no_context_takeover"),
    ("duplicate server_max_window_bits",
     "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"),
    ("duplicate client_max_window_bits",
     "permessage-deflate; client_max_window_bits; client_max_window_bits=10"),
    ("value on server_no_context_takeover", "permessage-deflate; server_no_context_takeover=1"),
    ("quoted value on client_no_context_takeover", 'permessage-deflate; client_no_context_takeover="x"'),
    ("server_max_window_bits without a value", "permessage-deflate; server_max_window_bits"),
    ("server_max_window_bits=7", "permessage-deflate; server_max_window_bits=7"),
    ("server_max_window_bits=16", "permessage-deflate; server_max_window_bits=16"),
    ("server_max_window_bits=0", "permessage-deflate; server_max_window_bits=0"),
    ("server_max_window_bits=abc", "permessage-deflate; server_max_window_bits=abc"),
    ('server_max_window_bits="abc"', 'permessage-deflate; server_max_window_bits="abc"'),
    ("server_max_window_bits=010 (leading zero)", "permessage-deflate; server_max_window_bits=010"),
    ("server_max_window_bits=08 (leading zero)", "permessage-deflate; server_max_window_bits=08"),
    ("server_max_window_bits=+9", "permessage-deflate; server_max_window_bits=+9"),
    ("client_max_window_bits=7", "permessage-deflate; client_max_window_bits=7"),
    ("client_max_window_bits=16", "permessage-deflate; client_max_window_bits=16"),
    ("client_max_window_bits=x", "permessage-deflate; client_max_window_bits=x"),
]


def with_smwb(answer, bits):
    return f"{answer}; server_max_window_bits={bits}"


def register_negotiation():
    # The default mode (no-context-takeover): every accepted offer gets both takeovers off.
    g = "default"
    for name, offer in [
        ("bare offer", "permessage-deflate"),
        ("server_no_context_takeover", "permessage-deflate; server_no_context_takeover"),
        ("client_no_context_takeover", "permessage-deflate; client_no_context_takeover"),
        ("both no_context_takeover",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ("client_max_window_bits without a value", "permessage-deflate; client_max_window_bits"),
        ("client_max_window_bits=10", "permessage-deflate; client_max_window_bits=10"),
        ("client_max_window_bits=8", "permessage-deflate; client_max_window_bits=8"),
        ('client_max_window_bits="10"', 'permessage-deflate; client_max_window_bits="10"'),
        ("no spaces", "permessage-deflate;client_no_context_takeover"),
    ]:
        negotiation(g, f"default mode: {name}", [offer], NO_CTX)
    for bits in range(8, 16):
        negotiation(g, f"default mode: server_max_window_bits={bits}",
                    [f"permessage-deflate; server_max_window_bits={bits}"], with_smwb(NO_CTX, bits))
    negotiation(g, 'default mode: server_max_window_bits="10" (quoted)',
                ['permessage-deflate; server_max_window_bits="10"'], with_smwb(NO_CTX, 10))
    negotiation(g, "default mode: every parameter",
                ["permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                 "server_max_window_bits=12; client_max_window_bits=9"], with_smwb(NO_CTX, 12))
    negotiation(g, "default mode: two acceptable offers in one header, the first wins",
                ["permessage-deflate; server_max_window_bits=9, permessage-deflate"], with_smwb(NO_CTX, 9))
    negotiation(g, "default mode: two acceptable offers in two headers, the first wins",
                ["permessage-deflate; server_max_window_bits=11", "permessage-deflate; server_max_window_bits=12"],
                with_smwb(NO_CTX, 11))
    negotiation(g, "default mode: an invalid offer in the first header, a valid one in the second",
                ["permessage-deflate; server_max_window_bits=7", "permessage-deflate; server_max_window_bits=13"],
                with_smwb(NO_CTX, 13))
    for name, offer in INVALID_OFFERS:
        negotiation(g, f"default mode: {name}, alone", [offer], None)
        negotiation(g, f"default mode: {name}, then a valid offer",
                    [f"{offer}, permessage-deflate; server_max_window_bits=10"], with_smwb(NO_CTX, 10))
    negotiation(g, "default mode: x-webkit-deflate-frame before permessage-deflate is ignored",
                ["x-webkit-deflate-frame, permessage-deflate; client_max_window_bits"], NO_CTX)
    negotiation(g, "default mode: another extension's parameters are not ours",
                ["x-webkit-deflate-frame; no_context_takeover; foo=bar", "permessage-deflate"], NO_CTX)
    negotiation(g, "default mode: only x-webkit-deflate-frame", ["x-webkit-deflate-frame"], None)
    negotiation(g, "default mode: no offer at all", [], None)
    negotiation(g, "default mode: only invalid offers",
                ["permessage-deflate; foo, permessage-deflate; server_max_window_bits=16"], None)

    # context-takeover: the answer says only what the offer asked for (and what the server must
    # add: server_no_context_takeover at an 8-bit window, which zlib cannot deflate with).
    g = "context"
    # First on a fresh server (one core): its context budget is all free.
    negotiation(g, "context-takeover mode: the first connection of a fresh core", ["permessage-deflate"],
                "permessage-deflate")
    for name, offer, want in [
        ("bare offer", "permessage-deflate", "permessage-deflate"),
        ("server_no_context_takeover", "permessage-deflate; server_no_context_takeover",
         "permessage-deflate; server_no_context_takeover"),
        ("client_no_context_takeover", "permessage-deflate; client_no_context_takeover",
         "permessage-deflate; client_no_context_takeover"),
        ("both no_context_takeover",
         "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ("client_max_window_bits without a value", "permessage-deflate; client_max_window_bits",
         "permessage-deflate; client_max_window_bits=15"),
        ("client_max_window_bits=10", "permessage-deflate; client_max_window_bits=10",
         "permessage-deflate; client_max_window_bits=10"),
        ('client_max_window_bits="9"', 'permessage-deflate; client_max_window_bits="9"',
         "permessage-deflate; client_max_window_bits=9"),
        ("server_max_window_bits=8", "permessage-deflate; server_max_window_bits=8",
         "permessage-deflate; server_no_context_takeover; server_max_window_bits=8"),
        ("server and client window bits",
         "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
         "permessage-deflate; server_max_window_bits=10; client_max_window_bits=15"),
        # client_max_window_bits is answered only where the client keeps its context: without
        # it the core's one 32 KiB inflater serves any window (RFC 7692 §7.1.2.2: the server
        # MAY answer it). DEFLATE.md §2's table does not say so.
        ("every parameter",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=12; client_max_window_bits=9",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=12"),
        ("client_max_window_bits with client_no_context_takeover",
         "permessage-deflate; client_max_window_bits=9; client_no_context_takeover",
         "permessage-deflate; client_no_context_takeover"),
        ("an invalid offer, then a valid one",
         "permessage-deflate; server_max_window_bits=010, permessage-deflate; client_max_window_bits",
         "permessage-deflate; client_max_window_bits=15"),
    ]:
        negotiation(g, f"context-takeover mode: {name}", [offer], want)
    for bits in range(9, 16):
        negotiation(g, f"context-takeover mode: server_max_window_bits={bits}",
                    [f"permessage-deflate; server_max_window_bits={bits}"],
                    f"permessage-deflate; server_max_window_bits={bits}")
    for name, offer in INVALID_OFFERS:
        negotiation(g, f"context-takeover mode: {name}, alone", [offer], None)

    g = "off"
    for offer in ("permessage-deflate", "permessage-deflate; client_max_window_bits",
                  "permessage-deflate; server_no_context_takeover; client_no_context_takeover"):
        negotiation(g, f"off: {offer}", [offer], None)


register_negotiation()


# ---------------------------------------------------------------- messages (default mode)
SIZES = [0, 1, 100, 1 << 10, 64 << 10, 1 << 20]
for size in SIZES:
    for opcode in (1, 2):
        def _echo(addr, size=size, opcode=opcode):
            c = DClient(addr, "permessage-deflate; client_max_window_bits")
            assert c.answer == NO_CTX, c.answer
            # JSON-like text compresses (a reply from MIN_SIZE on is compressed); random
            # binary does not (its reply goes uncompressed, RSV1 clear).
            data = json_text(size, seed=size) if opcode == 1 else os.urandom(size)
            c.echo(opcode, data, want_compressed=(opcode == 1 and size >= MIN_SIZE))
            c.bye()
        case("default", f"messages: compressed {'text' if opcode == 1 else 'binary'} echo {size} bytes")(_echo)


@case("default", "messages: min size: 10 and 63 bytes go back uncompressed, 64 compressed")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    for n, want in ((10, False), (MIN_SIZE - 1, False), (MIN_SIZE, True)):
        c.echo(1, (b"abcd" * 32)[:n], want_compressed=want)
        c.echo(1, (b"abcd" * 32)[:n], want_compressed=want, compress=False)


@case("default", "messages: compressed empty messages: zlib's sync flush, one 00 byte, a final block")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    for payload in (deflate(b""), b"\x00", deflate(b"", final=True)):
        c.frame(1, payload, rsv=RSV1)
        c.expect(1, b"")


@case("default", "messages: output ending in a final block accepted, text and binary")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    for size in (1, 100, 10 << 10):
        c.echo(1, json_text(size), None, final=True)
        c.echo(2, os.urandom(size), False, final=True)


@case("default", "messages: a final block and one 0x00 after it (what wsedge sends) accepted")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    for size in (0, 100, 10 << 10):
        data = json_text(size)
        c.frame(1, deflate(data, final=True) + b"\x00", rsv=RSV1)
        op, _, got, _ = c.recv_msg()
        assert (op, got) == (1, data), (op, len(got))


@case("default", "messages: uncompressed messages on a deflate connection, between compressed ones")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    for i, size in enumerate((0, 5, 100, 70000)):
        data = json_text(size, seed=i)
        c.echo(1, data, size >= MIN_SIZE, compress=False)
        c.echo(1, data, size >= MIN_SIZE)
        c.echo(2, data, size >= MIN_SIZE, compress=False)


@case("default", "messages: every message compressed on its own (each reply inflates with a fresh inflater)")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    msg = json_text(2000)
    sizes = [len(c.echo(1, msg, True)) for _ in range(3)]
    # Without context takeover the same message compresses to the same size each time.
    assert len(set(sizes)) == 1, f"reply sizes {sizes}"


for bits in range(8, 16):
    def _window(addr, bits=bits):
        c = DClient(addr, f"permessage-deflate; server_max_window_bits={bits}")
        assert c.answer == with_smwb(NO_CTX, bits), c.answer
        data = far_repeats((1 << bits) * 2)
        # At 8 bits nothing here deflates in so small a window: such messages go uncompressed.
        c.echo(1, data, want_compressed=(bits > 8), reply_bits=bits)
        small = json_text(200)  # at most 2^8 bytes: fits every window
        c.echo(1, small, want_compressed=True, reply_bits=bits)
        c.bye()
    case("default", f"messages: server_max_window_bits={bits}: a reply > 2^{bits} bytes inflates with a "
         f"{bits}-bit window")(_window)


for bits in (8, 9, 12, 15):
    def _client_window(addr, bits=bits):
        c = DClient(addr, f"permessage-deflate; client_max_window_bits={bits}")
        data = far_repeats(1 << (bits + 1))
        c.echo(1, data, True, bits=max(bits, 9))  # zlib deflates an 8-bit window as 9
    case("default", f"messages: client compressing with a {bits}-bit window")(_client_window)


def fragments(opcode, payload, count):
    """The compressed payload as `count` frames: RSV1 on the first only (RFC 7692 §6.1)."""
    cuts = [len(payload) * i // count for i in range(count + 1)]
    return [build_frame(opcode if i == 0 else 0, payload[cuts[i]:cuts[i + 1]], fin=(i == count - 1),
                        rsv=RSV1 if i == 0 else 0) for i in range(count)]


for count in (2, 3, 7, 100):
    def _frag(addr, count=count):
        c = DClient(addr, "permessage-deflate")
        data = json_text(10 << 10)
        c.send(b"".join(fragments(1, deflate(data), count)))
        op, compressed, got, _ = c.recv_msg()
        assert (op, compressed, got == data) == (1, True, True), (op, compressed, len(got))
        data = os.urandom(5000)
        c.send(b"".join(fragments(2, deflate(data), count)))
        op, compressed, got, _ = c.recv_msg()
        assert (op, compressed, got == data) == (2, False, True), (op, compressed, len(got))
    case("default", f"fragments: compressed message in {count} fragments")(_frag)


@case("default", "fragments: a small compressed message split in two at every byte")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    data = b"Hello, compressed world! " * 4
    payload = deflate(data)
    for cut in range(len(payload) + 1):
        c.send(build_frame(1, payload[:cut], fin=False, rsv=RSV1) + build_frame(0, payload[cut:]))
        op, compressed, got, _ = c.recv_msg()
        assert got == data, f"split at {cut}: {got!r}"


@case("default", "fragments: pings between compressed fragments are answered first")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    data = json_text(4000)
    frames = fragments(1, deflate(data), 4)
    c.send(frames[0] + build_frame(9, b"one") + frames[1] + frames[2] + build_frame(9, b"two") + frames[3])
    c.expect(10, b"one")
    c.expect(10, b"two")
    op, compressed, got, _ = c.recv_msg()
    assert (op, compressed, got == data) == (1, True, True), (op, compressed, len(got))


@case("default", "fragments: compressed fragments chopped into 1-byte writes, a ping between them")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    data = json_text(300)
    frames = fragments(1, deflate(data), 3)
    c.send(frames[0] + build_frame(9, b"p") + frames[1] + frames[2], chop=1)
    c.expect(10, b"p")
    op, compressed, got, _ = c.recv_msg()
    assert got == data


@case("default", "fragments: a fragmented uncompressed message on a deflate connection")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    data = json_text(3000)
    c.send(build_frame(1, data[:1000], fin=False) + build_frame(0, data[1000:2000], fin=False)
           + build_frame(0, data[2000:]))
    op, compressed, got, _ = c.recv_msg()
    assert got == data


# ---------------------------------------------------------------- failures (default mode)
OFFER = "permessage-deflate"
G = "default"
for op in (8, 9, 10):
    expect_failure(G, f"failures: RSV1 on control frame opcode {op}", 1002, OFFER,
                   build_frame(op, close_payload(1000) if op == 8 else b"x", rsv=RSV1))
expect_failure(G, "failures: RSV1 on a ping between compressed fragments", 1002, OFFER,
               *fragments(1, deflate(json_text(500)), 2)[:1], build_frame(9, b"x", rsv=RSV1))
expect_failure(G, "failures: RSV1 on a continuation of a compressed message", 1002, OFFER,
               build_frame(1, deflate(json_text(500))[:10], fin=False, rsv=RSV1),
               build_frame(0, deflate(json_text(500))[10:], rsv=RSV1))
expect_failure(G, "failures: RSV1 on a continuation of an uncompressed message", 1002, OFFER,
               build_frame(1, b"plain ", fin=False), build_frame(0, deflate(b"text"), rsv=RSV1))
for rsv in (1, 2, 3, 5, 6, 7):
    expect_failure(G, f"failures: rsv={rsv} on a compressed text message", 1002, OFFER,
                   build_frame(1, deflate(b"some text"), rsv=rsv))
expect_failure(G, "failures: RSV1 without an offer", 1002, None, build_frame(1, deflate(json_text(100)), rsv=RSV1))
expect_failure(G, "failures: RSV1 after a declined offer", 1002, "permessage-deflate; foo",
               build_frame(2, deflate(json_text(100)), rsv=RSV1))
for name, payload in [
    ("reserved block type 11", b"\xff\xff\xff\xff"),
    ("stored block whose NLEN is not ~LEN", b"\x00\x05\x00\x00\x00hello"),
    ("distance before the start of the message", b"\x03\x02\x00"),  # fixed Huffman: length 3, distance 1
    ("two 0x00 after a final block", deflate(b"hello", final=True) + b"\x00\x00"),
    ("0x01 after a final block", deflate(b"hello", final=True) + b"\x01"),
    ("a message that stops inside a block", deflate(json_text(1000))[:100]),
    ("a message after a final block", deflate(b"hello", final=True) + deflate(b"again")),
]:
    expect_failure(G, f"failures: corrupt deflate data: {name}", 1002, OFFER, build_frame(2, payload, rsv=RSV1))
expect_failure(G, "failures: corrupt deflate data in the second fragment", 1002, OFFER,
               build_frame(1, deflate(json_text(200)), fin=False, rsv=RSV1), build_frame(0, b"\xff\xff"))
for i, bad in enumerate((b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"ok\xe2\x82",
                         json_text(1000) + b"\xf5" + json_text(1000))):
    expect_failure(G, f"failures: inflated text with invalid UTF-8 {i}", 1007, OFFER,
                   build_frame(1, deflate(bad), rsv=RSV1))
expect_failure(G, "failures: inflated text with invalid UTF-8 across compressed fragments", 1007, OFFER,
               *fragments(1, deflate(b"\xe2\x82" * 100), 3))


@case("default", "failures: valid UTF-8 whose compressed bytes are not UTF-8 is fine")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    data = ("κόσμε ü € 😀 " * 50).encode()
    assert any(b >= 0x80 for b in deflate(data))
    c.echo(1, data, True)


# ---------------------------------------------------------------- context takeover
@case("context", "context takeover: one zlib stream each way, kept across messages")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    assert c.answer == "permessage-deflate", c.answer
    stream = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflater = zlib.decompressobj(wbits=-15)
    sent, replies = [], []
    for i in range(6):
        data = json_text(8000, seed=100 * (i % 2))  # two messages, over and over
        sent.append(len(c.send_msg(1, data, stream=stream)))
        op, compressed, got, wire = c.recv_msg(15, inflater)
        assert (op, compressed) == (1, True), (op, compressed)
        assert got == data, f"message {i}: {len(got)} bytes back for {len(data)}"
        replies.append(len(wire))
    # A repeat refers back into the context: ~120 bytes, where on its own it was ~850.
    assert sent[2] * 5 < sent[0], f"our own compression kept no context? {sent}"
    assert replies[2] * 5 < replies[0], f"the server's replies carry no context: sizes {replies}"


@case("context", "context takeover: small and uncompressed messages between compressed ones")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    stream = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflater = zlib.decompressobj(wbits=-15)
    for i in range(4):
        data = json_text(500, seed=i)
        c.echo(1, data, True, stream=stream, inflater=inflater)
        c.echo(1, b"tiny", False, stream=stream, inflater=inflater)
        c.echo(2, data, True, compress=False, inflater=inflater)


@case("context", "context takeover: compressed fragments of a context-takeover stream")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    stream = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflater = zlib.decompressobj(wbits=-15)
    for i in range(3):
        data = json_text(8000)
        payload = stream.compress(data) + stream.flush(zlib.Z_SYNC_FLUSH)
        c.send(b"".join(fragments(1, payload[:-4], 3)))
        op, compressed, got, _ = c.recv_msg(15, inflater)
        assert got == data, f"message {i}"


@case("context", "context takeover: client_no_context_takeover and server_no_context_takeover asked for")
def _(addr):
    c = DClient(addr, "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    sizes = []
    for i in range(3):
        sizes.append(len(c.echo(1, json_text(3000), True)))  # each reply inflates on its own
    assert len(set(sizes)) == 1, f"reply sizes {sizes}"


for bits in range(9, 16):
    def _ctx_window(addr, bits=bits):
        c = DClient(addr, f"permessage-deflate; server_max_window_bits={bits}; client_max_window_bits={bits}")
        want = f"permessage-deflate; server_max_window_bits={bits}; client_max_window_bits={bits}"
        assert c.answer == want, c.answer
        stream = zlib.compressobj(6, zlib.DEFLATED, -bits)
        inflater = zlib.decompressobj(wbits=-bits)
        first = far_repeats((1 << bits) * 2)
        for data in (first, first, far_repeats((1 << bits) * 2)):
            c.echo(1, data, True, stream=stream, inflater=inflater, reply_bits=bits)
    case("context", f"context takeover: {bits}-bit windows both ways")(_ctx_window)


@case("context", "context takeover: server_max_window_bits=8: replies uncompressed past 256 bytes")
def _(addr):
    c = DClient(addr, "permessage-deflate; server_max_window_bits=8")
    for _ in range(2):
        c.echo(1, far_repeats(1024), False, reply_bits=8)
        c.echo(1, json_text(200), True, reply_bits=8)


expect_failure("context", "context takeover: corrupt data in the second message", 1002, "permessage-deflate",
               build_frame(1, deflate(json_text(300)), rsv=RSV1), build_frame(1, b"\xff\xff\xff", rsv=RSV1))


@case("context", "context takeover: the zlib state a connection holds is on the gauge while it is open")
def _(addr):
    admin, gauge = SERVER["admin"], "wsedge_deflate_context_bytes"
    before = scrape(admin)[gauge]
    c = DClient(addr, "permessage-deflate")
    c.echo(1, json_text(1000), True, stream=zlib.compressobj(6, zlib.DEFLATED, -15),
           inflater=zlib.decompressobj(wbits=-15))
    held = scrape(admin)[gauge] - before
    # Both streams at 15 bits: 2^17 + 128 KiB deflating, 2^15 inflating (DEFLATE.md §5), and less
    # than twice that.
    assert 256 << 10 < held < 600 << 10, f"{held} bytes held"
    c.bye()
    deltas(admin, {gauge: before}, {gauge: 0})


# ---------------------------------------------------------------- budget
# A server whose --deflate-context-memory holds no stream: every direction that would have had
# context takeover gets none and is counted; what the client itself declined is not.
for name, offer, want, refused in [
    ("bare offer", "permessage-deflate", NO_CTX, 2),
    ("client_no_context_takeover", "permessage-deflate; client_no_context_takeover", NO_CTX, 1),
    ("server_no_context_takeover", "permessage-deflate; server_no_context_takeover", NO_CTX, 1),
    ("both no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", NO_CTX, 0),
    ("server_max_window_bits=8 (no server stream at 8 bits anyway)",
     "permessage-deflate; server_max_window_bits=8", with_smwb(NO_CTX, 8), 1),
]:
    def _budget(addr, offer=offer, want=want, refused=refused):
        admin = SERVER["admin"]
        before = scrape(admin)
        c = DClient(addr, offer)
        assert c.answer == want, f"answered {c.answer!r}, expected {want!r}"
        for i in range(3):  # each message on its own, both ways (200 bytes fit an 8-bit window)
            c.echo(1, json_text(200), True, reply_bits=8 if "=8" in offer else 15)
        c.bye()
        deltas(admin, before, {"wsedge_deflate_context_refused_total": refused,
                               "wsedge_deflate_context_bytes": 0})
    case("budget", f"context budget full: {name} -> {want}, {refused} refused")(_budget)


# ---------------------------------------------------------------- off
expect_failure("off", "off: RSV1 after an offer the server declined", 1002, "permessage-deflate",
               build_frame(1, deflate(json_text(100)), rsv=RSV1))


@case("off", "off: messages echo uncompressed after an offer")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    c.echo(1, json_text(5000), False, compress=False)


# ---------------------------------------------------------------- limits, memory and metrics
def vm_kib(pid, field):
    """VmRSS (resident now) or VmHWM (the peak since the last reset) in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field}")


@case("limits", f"limits: a message inflating to exactly --max-message ({MAX_MESSAGE}) is echoed")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    data = json_text(MAX_MESSAGE)
    c.echo(1, data, True)
    c.bye()


@case("limits", "limits: one byte more than --max-message inflated -> 1009")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    c.send_msg(1, json_text(MAX_MESSAGE + 1))
    c.expect_close(1009)


@case("limits", "limits: one byte more than --max-message, in compressed fragments -> 1009")
def _(addr):
    c = DClient(addr, "permessage-deflate")
    c.send(b"".join(fragments(2, deflate(bytes(MAX_MESSAGE + 1)), 5)))
    c.expect_close(1009)


@case("limits", "limits: a decompression bomb (64 MiB of zeros) -> 1009, RSS (and its peak) grows < 8 MiB")
def _(addr):
    pid = SERVER["proc"].pid
    bomb = deflate(bytes(64 << 20), final=True)
    assert len(bomb) < 100 << 10, len(bomb)
    warm = DClient(addr, "permessage-deflate")  # the connection's own costs, before measuring
    warm.echo(1, json_text(1000), True)
    time.sleep(0.2)
    # The peak too: memory taken for the bomb and given back at once leaves RSS as it was.
    # Writing 5 to clear_refs resets VmHWM to the current RSS.
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    before = vm_kib(pid, "VmRSS")
    for _ in range(3):
        c = DClient(addr, "permessage-deflate")
        c.frame(2, bomb, rsv=RSV1)
        c.expect_close(1009)
    time.sleep(0.2)
    after, peak = vm_kib(pid, "VmRSS"), vm_kib(pid, "VmHWM")
    assert peak - before < 8 << 10, f"VmRSS {before} KiB, peak {peak} KiB during the bombs"
    assert after - before < 8 << 10, f"VmRSS {before} KiB -> {after} KiB"
    warm.echo(1, json_text(1000), True)


def cores_up(admin):
    """Returns once /readyz says every core serves (their metrics are on /metrics from then)."""
    deadline = time.time() + conformance.TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(admin + "/readyz", timeout=conformance.TIMEOUT):
                return
        except urllib.error.HTTPError:
            assert time.time() < deadline, "cores did not come up"
            time.sleep(0.02)


def scrape(admin):
    """{name: value summed over cores} of /metrics (the text format's lines, parsed here)."""
    with urllib.request.urlopen(admin + "/metrics", timeout=conformance.TIMEOUT) as r:
        body = r.read().decode()
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        name = name_labels.split("{", 1)[0]
        out[name] = out.get(name, 0) + float(value)
    return out


def deltas(admin, before, want, timeout=3.0):
    """Waits until every metric in `want` has moved by its value from `before` (counters are
    bumped on the core's thread, maybe just after the reply we read); returns the last scrape."""
    deadline = time.time() + timeout
    while True:
        now = scrape(admin)
        got = {k: now.get(k, 0) - before.get(k, 0) for k in want}
        if got == want or time.time() > deadline:
            assert got == want, f"metric deltas {got}, expected {want}"
            return now


@case("limits", "metrics: the deflate counters follow compressed traffic, bad data and bombs")
def _(addr):
    admin = SERVER["admin"]
    m = "wsedge_"
    before = scrape(admin)
    for name in ("deflate_negotiated_total", "messages_deflated_total", "deflate_in_bytes_total",
                 "deflate_out_bytes_total", "messages_inflated_total", "inflate_in_bytes_total",
                 "inflate_out_bytes_total", "inflate_errors_total", "inflate_too_big_total",
                 "deflate_context_refused_total", "deflate_context_bytes"):
        assert m + name in before, f"/metrics has no {m}{name}"
    # Two connections, five compressible echoes each: exact counts and bytes both ways.
    sent_wire = sent_raw = reply_wire = reply_raw = 0
    for i in range(2):
        c = DClient(addr, "permessage-deflate")
        for j in range(5):
            data = json_text(4000 + j * 1000, seed=j)
            payload = c.send_msg(1, data)
            _, compressed, got, wire = c.recv_msg()
            assert compressed and got == data
            sent_wire += len(payload)
            sent_raw += len(data)
            reply_wire += len(wire)
            reply_raw += len(data)
        c.bye()
    now = deltas(admin, before, {
        m + "deflate_negotiated_total": 2, m + "messages_deflated_total": 10,
        m + "deflate_in_bytes_total": reply_raw, m + "deflate_out_bytes_total": reply_wire,
        m + "messages_inflated_total": 10, m + "inflate_in_bytes_total": sent_wire,
        m + "inflate_out_bytes_total": sent_raw,
        m + "inflate_errors_total": 0, m + "inflate_too_big_total": 0,
        # Messages as the application got them: inflated (DEFLATE.md §4).
        m + "messages_received_total": 10, m + "received_payload_bytes_total": sent_raw})
    assert now[m + "deflate_in_bytes_total"] > now[m + "deflate_out_bytes_total"]
    # Not negotiated: counted nowhere.
    before = now
    c = DClient(addr)
    c.echo(1, json_text(3000), False, compress=False)
    c.bye()
    now = deltas(admin, before, {m + "deflate_negotiated_total": 0, m + "messages_deflated_total": 0})
    # Corrupt data: one inflate error each.
    before = now
    for _ in range(2):
        c = DClient(addr, "permessage-deflate")
        c.frame(1, b"\xff\xff\xff", rsv=RSV1)
        c.expect_close(1002)
    now = deltas(admin, before, {m + "inflate_errors_total": 2, m + "inflate_too_big_total": 0})
    # Past --max-message: one too-big each.
    before = now
    for _ in range(3):
        c = DClient(addr, "permessage-deflate")
        c.frame(2, deflate(bytes(4 << 20)), rsv=RSV1)
        c.expect_close(1009)
    deltas(admin, before, {m + "inflate_errors_total": 0, m + "inflate_too_big_total": 3})


# ---------------------------------------------------------------- running
SERVERS = [
    ("default", ["--cores", "2"]),
    ("context", ["--cores", "1", "--deflate", "context-takeover"]),
    ("budget", ["--cores", "1", "--deflate", "context-takeover", "--deflate-context-memory", "1000"]),
    ("off", ["--cores", "1", "--deflate", "off"]),
    ("limits", ["--cores", "1", "--max-message", str(MAX_MESSAGE)]),
]


def main():
    binary = sys.argv[1]
    only = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
    tmp = tempfile.TemporaryDirectory()
    tls = None
    if "--tls" in sys.argv:
        tls = make_cert(tmp.name, "localhost")
        conformance.CLIENT_SSL = ssl.create_default_context(cafile=tls[0])
    passed = failed = 0
    for group, flags in SERVERS:
        cases = [(n, fn) for n, fn in GROUPS[group] if not only or only in n]
        if not cases:
            continue
        SERVER.clear()
        p, f = 0, None
        try:
            with start_server(binary, *flags, tls=tls) as (url, proc):
                SERVER.update(proc=proc, admin=admin_url(proc))
                cores_up(SERVER["admin"])
                p, f = run(cases, host_port(url), only)
        except RuntimeError as e:  # it did not start (every case fails), or did not stop cleanly
            print(f"FAIL  server {' '.join(flags)}: {e}")
            f = len(cases) if f is None else f + 1
        else:
            if f:
                print(f"server log ({' '.join(flags)}):\n" + proc.log)
        passed, failed = passed + p, failed + f
    print(f"deflate conformance ({'wss' if tls else 'ws'}): {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
