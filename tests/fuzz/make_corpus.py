#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (tests/fuzz/corpus/<target>/): a few small meaningful
inputs each, in the layout each target reads (see the comment at the top of each target).
Rerun after changing a layout; the files are committed so a fresh checkout can fuzz at once."""
import base64
import hashlib
import hmac
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key; upgrade_request_fuzz checks 101s with it
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# upgrade_request_fuzz: HTTP, then (FuzzedDataProvider takes integers from the end) one byte
# picking the header name to look up, the split point (2 bytes) and max_header - 1 (2 bytes).
def upgrade(name, http, split, probe=0, max_header=8192):
    tail = struct.pack("<BHH", probe, split, max_header - 1)
    write("upgrade_request_fuzz", name, http.encode() + tail)


def request(target="/chat", extra="", key=KEY):
    return (f"GET {target} HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
            f"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n")


# frame_reader_fuzz: [flags][extras][cut count][cut offsets, 2 bytes each][stream]; flags bit 0 =
# the reader expects masked frames, (flags >> 1) % 10 indexes max_message in the target; extras
# bits 0-1 index the allowed RSV bits (1: RSV1), bits 2-4 the fragment limit (2: 2 frames),
# bits 5-6 the assembly budget (1: 128 bytes).
MAX_1000, MAX_125, MAX_1M = 6, 3, 9
RSV1, TWO_FRAGMENTS, BUDGET_128 = 1, 2 << 2, 1 << 5


def frames(name, stream, cuts=(), masked=True, limit=MAX_1M, extras=0):
    head = (bytes([(limit << 1) | masked, extras, len(cuts)]) +
            b"".join(struct.pack("<H", c) for c in cuts))
    write("frame_reader_fuzz", name, head + stream)


def frame(op, payload, fin=True, masked=True, key=b"\x37\xfa\x21\x3d", length64=False, rsv=0):
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv | op
    m = 0x80 if masked else 0
    if length64:
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    elif n < 126:
        hdr = bytes([b0, m | n])
    elif n < 65536:
        hdr = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not masked:
        return hdr + payload
    return hdr + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


# utf8_fuzz: text, then cut offsets (2 bytes each, last cut first) and their count (last byte).
def utf8(name, text, cuts=()):
    tail = b"".join(struct.pack("<H", c) for c in reversed(cuts)) + bytes([len(cuts)])
    write("utf8_fuzz", name, text + tail)


# inflate_fuzz: max_size (2 bytes, little-endian), then one permessage-deflate payload (raw
# deflate; a sync flush's 00 00 ff ff tail removed, as RFC 7692 sends it).
def inflate_seeds():
    import zlib
    text = (b'{"id":100037,"name":"alice","kind":"trade","ts":1764470001234,"tags":["t3"]},' * 8)

    def deflated(data, final=False, level=6, wbits=15):
        c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
        if final:
            return c.compress(data) + c.flush(zlib.Z_FINISH)
        out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4]

    def seed(name, max_size, payload):
        write("inflate_fuzz", name, struct.pack("<H", max_size) + payload)

    seed("sync_flush", 4096, deflated(text))
    seed("final_block", 4096, deflated(text, final=True))
    seed("window_9_level_1", 4096, deflated(text, level=1, wbits=9))
    seed("stored", 4096, deflated(bytes(range(200)), level=0))
    seed("too_big_1009", 100, deflated(text))
    seed("zeros_bomb", 65535, deflated(bytes(1 << 20), level=9))
    seed("empty", 0, deflated(b""))
    seed("garbage_after_final_1002", 4096, deflated(text, final=True) + b"xyz")
    seed("bad_block_type_1002", 4096, b"\x07\x00")


# bridge_message_fuzz: [cut][frame 0 + frame 1], seeded from the bridge's golden vectors.
def bridge_seeds():
    vectors = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bridge", "vectors")
    for name in sorted(os.listdir(vectors)):
        frames = [l.strip() for l in open(os.path.join(vectors, name))
                  if l.strip() and not l.startswith("#")]
        meta = bytes.fromhex(frames[1]) if len(frames) > 1 and frames[1] != "-" else b""
        write("bridge_message_fuzz", name[:-4], bytes([24]) + bytes.fromhex(frames[0]) + meta)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


# jwt_fuzz: a mode byte (0 a token, 1 a claims payload the target signs, 2 JSON alone), then the
# data. Mode 0 tokens are signed with a secret the target does not hold: one that verified there
# would be a crash by design.
def jwt_seeds():
    def token(header, payload, secret=b"not-the-fuzz-target-secret-32-bytes"):
        signing = b64url(header) + b"." + b64url(payload)
        return signing + b"." + b64url(hmac.new(secret, signing, hashlib.sha256).digest())
    claims = b'{"sub":"alice","exp":1800000600,"aud":"wsedge","roles":["admin"],"channels":["r/1"],"info":{"a":[1,2.5e1,"\\u00e9"]}}'
    write("jwt_fuzz", "token_hs256", b"\0" + token(b'{"alg":"HS256","kid":"hs","typ":"JWT"}', claims))
    write("jwt_fuzz", "token_es256", b"\0" + b64url(b'{"alg":"ES256","kid":"es"}') + b"." +
          b64url(claims) + b"." + b64url(bytes(range(64))))
    write("jwt_fuzz", "token_none", b"\0" + b64url(b'{"alg":"none"}') + b"." + b64url(claims) + b".")
    write("jwt_fuzz", "claims_valid", b"\1" + claims)
    write("jwt_fuzz", "claims_expired", b'\1{"sub":"a","exp":1.7e9,"nbf":0,"iat":1800000000}')
    write("jwt_fuzz", "claims_aud_array", b'\1{"sub":"a","exp":1800000600,"aud":["x","wsedge"]}')
    write("jwt_fuzz", "json_nested", b'\2{"keys":[{"kty":"EC","crv":"P-256","x":"AA"},[[[]]],null,true,-0.5e-3]}')
    write("jwt_fuzz", "json_surrogates", b'\2["\\ud83d\\ude00","\\u0041\xc3\xa9",{"alg":"x","alg":"y"}]')


# acl_file_fuzz: the ACL file's text as is: the documented example (auth/acl_file.hpp), then
# variants for the compiler's refusals (a cycle, a 32nd permission), `{sub}` patterns, a long
# parent chain with a deny half way up, and typos the parser refuses.
ACL_EXAMPLE = """# roles and their parents
[roles]
member = { parents = ["guest"] }
admin  = { parents = ["member"] }
# users (token `sub`) and the roles the file gives them, beside those in their token
[users]
alice = ["admin"]
# grants; [[deny]] has the same shape and wins
[[allow]]
roles = ["guest"]
resources = ["/chat", "chat:lobby"]
permissions = ["connect", "subscribe"]
[[allow]]
roles = ["member"]
resources = ["chat:*", "user:{sub}"]
permissions = ["*"]
[[deny]]
roles = ["guest"]
resources = ["chat:admin"]
permissions = ["publish"]
"""


def acl_seeds():
    def rule(kind, roles, resources, perms):
        q = lambda xs: "[" + ", ".join('"%s"' % x for x in xs) + "]"
        return "[[%s]]\nroles = %s\nresources = %s\npermissions = %s\n" % (
            kind, q(roles), q(resources), q(perms))

    seeds = {
        "example": ACL_EXAMPLE,
        "cycle": '[roles]\na = { parents = ["b"] }\nb = { parents = ["c"] }\n'
                 'c = { parents = ["a"] }\n' + rule("allow", ["a"], ["*"], ["*"]),
        "sub_patterns": '[users]\nalice = ["member"]\n'
                        + rule("allow", ["member"], ["user:{sub}", "inbox:{sub}:*", "dm:{sub}:{sub}",
                                                     "{sub}*"], ["subscribe", "publish"])
                        + rule("deny", ["member"], ["inbox:{sub}:spam"], ["*"]),
        "many_permissions": rule("allow", ["r"], ["chat:*", "/chat"], ["p%d" % i for i in range(32)]),
        "deep_roles": "[roles]\n" + "".join('r%d = { parents = ["r%d"] }\n' % (i, i + 1)
                                            for i in range(60))
                      + '[users]\nalice = ["r0"]\n'
                      + rule("allow", ["r60"], ["chat:lobby", "chat:*", "/chat"], ["publish"])
                      + rule("deny", ["r30"], ["chat:lobby"], ["publish", "connect"]),
        "typos": '[roles]\nmember = { parent = ["guest"] }\n[[alow]]\nroles = "guest"\n',
    }
    for name, text in seeds.items():
        write("acl_file_fuzz", name, text.encode())


# proxy_header_fuzz: what the proxy sent, then the split point (2 bytes).
PROXY_V2_SIG = b"\r\n\r\n\0\r\nQUIT\n"


def proxy(name, header, split, after=b"GET / HTTP/1.1\r\n"):
    write("proxy_header_fuzz", name, header + after + struct.pack("<H", split))


def proxy_v2(cmd, fam, body):
    return PROXY_V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


def proxy_seeds():
    inet = bytes([203, 0, 113, 7, 192, 0, 2, 1]) + struct.pack(">HH", 5555, 443)
    inet6 = (bytes.fromhex("20010db8000000000000000000000007") +
             bytes.fromhex("20010db8000000000000000000000001") + struct.pack(">HH", 1234, 443))
    proxy("v1_tcp4", b"PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\n", split=20)
    proxy("v1_tcp6", b"PROXY TCP6 2001:db8::7 2001:db8::1 1234 443\r\n", split=40)
    proxy("v1_unknown", b"PROXY UNKNOWN\r\n", split=3, after=b"\x16\x03\x01")
    proxy("v1_bad_port", b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 443\r\n", split=50)
    proxy("v2_inet", proxy_v2(1, 0x11, inet), split=13)
    proxy("v2_inet6_tlvs", proxy_v2(1, 0x21, inet6 + b"\x01\x00\x02h2\x02\x00\x0bexample.com"),
          split=30)
    proxy("v2_local", proxy_v2(0, 0x00, b""), split=16, after=b"\x16\x03\x01\x00\x05")
    proxy("v2_unix", proxy_v2(1, 0x31, bytes(216)), split=100)
    proxy("v2_tlv_overrun", proxy_v2(1, 0x11, inet + b"\x01\x00\x09h2"), split=16)
    proxy("no_header_get", b"", split=1)


# record_open_fuzz: a body, then (taken from the end, in this order) `sealed` (bit 0), the suite
# (0-2), the flip count and 2-byte flip offsets, the cut count and 2-byte cut offsets. Sealed
# bodies are records to seal: [inner type][length, 2 bytes little-endian][plaintext].
def record_seeds():
    def seed(name, body, sealed=True, suite=0, flips=(), cuts=()):
        taken = [int(sealed), suite, len(flips)]
        for f in flips:
            taken += [f >> 8, f & 0xFF]  # FuzzedDataProvider reads the high byte first
        taken.append(len(cuts))
        for c in cuts:
            taken += [c >> 8, c & 0xFF]
        write("record_open_fuzz", name, body + bytes(reversed(taken)))

    def rec(inner_type, plain):
        return bytes([inner_type]) + struct.pack("<H", len(plain)) + plain

    seed("app_data", rec(23, b"hello, record layer"))
    seed("every_type_chacha", rec(22, bytes([24, 0, 0, 1, 1])) + rec(21, b"\x01\x00") +
         rec(23, bytes(range(256)) * 2), suite=2, cuts=(3, 5, 40, 41))
    seed("padding_then_zeros_aes256", rec(0, b"ok\x17\x00\x00") + rec(0, b"") + rec(23, b"x"),
         suite=1, cuts=(1,))
    seed("unknown_inner_type", rec(20, b"\x01") + rec(23, b"never"))
    seed("tag_flipped", rec(23, b"tampered") + rec(23, b"after"), flips=(28,))
    seed("length_flipped", rec(23, b"reframed"), flips=(4,), cuts=(2, 9))
    seed("raw_overflow", bytes([23, 3, 3, 0x41, 0x01]) + b"\0" * 20, sealed=False)
    seed("raw_short", bytes([23, 3, 3, 0, 5, 1, 2, 3, 4, 5, 21, 3, 3, 0, 2, 1, 0]), sealed=False,
         cuts=(2, 7))


def main():
    record_seeds()
    proxy_seeds()
    inflate_seeds()
    upgrade("valid", request(), split=40)
    upgrade("query_protocols_origin",
            request("/chat?room=1&x=%20", "Origin: https://example.com\r\n"
                    "Sec-WebSocket-Protocol: chat, superchat\r\n"), split=100, probe=7)
    upgrade("bad_key", request(key="not-base64!"), split=10, probe=3)
    upgrade("health", "GET /healthz?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n", split=20)
    upgrade("small_limit_431", request(), split=5, max_header=64)
    # Accepted with 101 before the fix that made origin-form targets required (a fuzz finding).
    upgrade("regression_target_not_origin_form", request("?chat"), split=0)
    upgrade("extensions_two_lines",
            request("/ws", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                    "sec-websocket-extensions: x-b; p=\"1\", x-c\r\n"), split=60, probe=8)
    upgrade("response_101", f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n"
            f"Sec-WebSocket-Protocol: chat\r\n\r\n", split=30)

    frames("text", frame(1, b"Hello"), cuts=(1, 4))
    frames("binary_16bit_length", frame(2, bytes(range(256)) * 2), cuts=(3, 300))
    frames("fragmented_text_with_ping", frame(1, b"fra", fin=False) + frame(9, b"ping!") +
           frame(0, "gmé".encode(), fin=False) + frame(0, b"nted"), cuts=(2, 9, 17, 30))
    frames("ping_pong", frame(9, b"") + frame(10, b"pong payload"))
    frames("close_with_code", frame(8, struct.pack(">H", 1000) + b"bye"), cuts=(7,))
    frames("length_64bit", frame(2, b"x" * 200, length64=True), cuts=(5, 12))
    frames("too_big_1009", frame(1, b"a" * 200), limit=MAX_125)
    frames("invalid_utf8_1007", frame(1, b"ok \xed\xa0\x80 surrogate"), cuts=(8,))
    frames("text_4byte_split", frame(1, "😀 U+1F600".encode()[:2], fin=False) +
           frame(0, "😀 U+1F600".encode()[2:]), cuts=(8, 9), limit=MAX_1000)
    frames("rsv1_allowed_text_unvalidated", frame(1, b"\xff compressed", rsv=0x40) +
           frame(1, b"plain"), cuts=(3,), extras=RSV1)
    frames("rsv1_on_continuation_1002", frame(2, b"a", fin=False, rsv=0x40) +
           frame(0, b"b", rsv=0x40), extras=RSV1)
    frames("three_fragments_over_limit_1009", frame(2, b"a", fin=False) + frame(0, b"b", fin=False) +
           frame(0, b"c"), cuts=(4, 11), extras=TWO_FRAGMENTS)
    frames("assembly_over_budget_1009", frame(2, b"x" * 100, fin=False) + frame(0, b"y" * 100),
           cuts=(50, 150), extras=BUDGET_128)
    frames("client_unmasked", frame(1, b"from server", masked=False) +
           frame(8, struct.pack(">H", 1001), masked=False), masked=False, cuts=(1,))

    utf8("ascii", b"Hello, WebSocket!", cuts=(3, 7))
    utf8("greek", "κόσμε".encode(), cuts=(1, 2))
    utf8("four_byte", "emoji 😀 and max \U0010FFFF".encode(), cuts=(7, 8, 9))
    utf8("overlong", b"\xc0\xaf / \xe0\x80\xaf")
    utf8("surrogate", b"\xed\xa0\x80", cuts=(1,))
    utf8("above_max", b"\xf4\x90\x80\x80")
    utf8("truncated", b"abc\xe2\x82", cuts=(4,))
    utf8("lone_continuation", b"\x80abc")
    bridge_seeds()
    jwt_seeds()
    acl_seeds()


if __name__ == "__main__":
    sys.exit(main())
