#include "engine/protocol/http_upgrade.hpp"

#include <gtest/gtest.h>

#include <string>

namespace wsedge::protocol {
namespace {

const std::string kGood =
    "GET /chat?x=1 HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "X-Custom:  spaced value \r\n"
    "\r\n";

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

RequestResult parse(const std::string& s, UpgradeRequest& r, std::size_t max = 8192) {
  return parse_upgrade_request(s, max, r);
}

TEST(Upgrade, RfcAcceptKey) {
  AcceptKey k = accept_key("dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(std::string(k.data(), k.size()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(Upgrade, ParsesAValidRequest) {
  UpgradeRequest r;
  const std::string input = kGood + "\x81\x85";  // views point into it
  auto res = parse(input, r);
  ASSERT_EQ(res.kind, RequestParse::kUpgrade);
  EXPECT_EQ(res.consumed, kGood.size());  // pipelined frame bytes are left alone
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/chat?x=1");
  EXPECT_EQ(r.host, "server.example.com");
  EXPECT_EQ(r.key, "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_EQ(r.origin, "http://example.com");
  EXPECT_EQ(r.protocols, "chat, superchat");
  EXPECT_EQ(r.header("x-custom"), "spaced value");
  EXPECT_EQ(r.header("missing"), "");
}

TEST(Upgrade, HeaderNamesAndTokensAreCaseInsensitive) {
  std::string s = replace(kGood, "Upgrade: websocket", "upGRADE: WebSocket");
  s = replace(s, "Connection: keep-alive, Upgrade", "CONNECTION: upgrade");
  UpgradeRequest r;
  EXPECT_EQ(parse(s, r).kind, RequestParse::kUpgrade);
}

TEST(Upgrade, IncompleteUntilTheBlankLine) {
  UpgradeRequest r;
  for (std::size_t n = 0; n < kGood.size(); ++n) {
    ASSERT_EQ(parse(kGood.substr(0, n), r).kind, RequestParse::kIncomplete) << n;
  }
}

TEST(Upgrade, BadRequestsAreRejectedWithTheRightStatus) {
  struct Case {
    std::string request;
    int status;
  };
  const std::vector<Case> cases = {
      {replace(kGood, "GET ", "POST "), 400},
      {replace(kGood, "HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost"), 400},
      {replace(kGood, "GET /chat?x=1 HTTP/1.1", "GET"), 400},
      {replace(kGood, "Host: server.example.com\r\n", ""), 400},
      {replace(kGood, "Host: server.example.com\r\n", "Host: a\r\nHost: b\r\n"), 400},
      {replace(kGood, "Upgrade: websocket\r\n", ""), 426},
      {replace(kGood, "Upgrade: websocket", "Upgrade: h2c"), 426},
      {replace(kGood, "Connection: keep-alive, Upgrade", "Connection: keep-alive"), 400},
      {replace(kGood, "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"), 426},
      {replace(kGood, "Sec-WebSocket-Version: 13\r\n", ""), 426},
      {replace(kGood, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 400},
      {replace(kGood, "dGhlIHNhbXBsZSBub25jZQ==", "short=="), 400},
      {replace(kGood, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZ!=="), 400},
      {replace(kGood, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZR=="), 400},
      {replace(kGood, "X-Custom:", " X-Custom:"), 400},  // obsolete line folding
      {replace(kGood, "X-Custom:", "X-Custom"), 400},    // no colon
      {replace(kGood, "X-Custom:", "X Custom:"), 400},   // space in a name
  };
  for (const Case& c : cases) {
    UpgradeRequest r;
    auto res = parse(c.request, r);
    EXPECT_EQ(res.kind, RequestParse::kReject) << c.request;
    EXPECT_EQ(res.status, c.status) << c.request;
    EXPECT_NE(res.reason, nullptr);
  }
}

// upgrade_request_fuzz found the first of these (corpus/upgrade_request_fuzz/
// regression_target_not_origin_form): "?chat", "*" and absolute URIs got 101.
TEST(Upgrade, OnlyOriginFormTargetsAreAccepted) {
  for (std::string target :
       {"/", "/chat", "/a/b/c?x=1&y=2", "/%41%2f%Fa", "/-._~!$&'()*+,;=:@", "/p?q/r?s"}) {
    UpgradeRequest r;
    EXPECT_EQ(parse(replace(kGood, "/chat?x=1", target), r).kind, RequestParse::kUpgrade) << target;
  }
  for (const std::string& target : std::vector<std::string>{std::string("/\0", 2),
                                                            "/\x01\x7f\xff",
                                                            "/a\rb",
                                                            "/a\nb",
                                                            "/a\tb",
                                                            "abc",
                                                            "*",
                                                            "http://host/chat",
                                                            "/chat#frag",
                                                            "/caf\xc3\xa9",
                                                            "/a%",
                                                            "/a%4",
                                                            "/a%zz",
                                                            "/a\"b",
                                                            "/a<b>",
                                                            "/a\\b",
                                                            "/a{b}",
                                                            "/a|b",
                                                            "/a^b",
                                                            "/a`b",
                                                            "/a[b]"}) {
    UpgradeRequest r;
    auto res = parse(replace(kGood, "/chat?x=1", target), r);
    EXPECT_EQ(res.kind, RequestParse::kReject) << target;
    EXPECT_EQ(res.status, 400) << target;
  }
  // Spaces split the request line into more than three parts.
  UpgradeRequest r;
  EXPECT_EQ(parse(replace(kGood, "/chat?x=1", "/a b"), r).status, 400);
}

TEST(Upgrade, BareCrOrLfInTheHeadIsRefused) {
  for (std::string bad : {"GET /chat HTTP/1.1\rX", "GET /chat HTTP/1.1\nX"}) {
    UpgradeRequest r;
    EXPECT_EQ(parse(replace(kGood, "GET /chat?x=1 HTTP/1.1", bad), r).status, 400) << bad;
  }
  for (std::string bad : {"X-Custom: a\rb", "X-Custom: a\nb", "X-Cu\rstom: a", "X-Cu\nstom: a"}) {
    UpgradeRequest r;
    EXPECT_EQ(parse(replace(kGood, "X-Custom:  spaced value ", bad), r).status, 400) << bad;
  }
}

TEST(Upgrade, ControlBytesInHeaderValuesAreRefused) {
  // ESC in Host, DEL in Origin, BEL in a subprotocol got 101 and reached the application.
  for (std::string bad :
       {"X-Custom: a\x1b[31mb", "X-Custom: a\x7f", "X-Custom: \x07", "X-Custom: a\x01b"}) {
    UpgradeRequest r;
    EXPECT_EQ(parse(replace(kGood, "X-Custom:  spaced value ", bad), r).status, 400) << bad;
  }
  UpgradeRequest r;  // a tab is whitespace, and bytes from 0x80 are obs-text: both allowed
  EXPECT_EQ(parse(replace(kGood, "X-Custom:  spaced value ", "X-Custom: a\tb \xc3\xa9"), r).kind,
            RequestParse::kUpgrade);
}

TEST(Upgrade, ARequestWithABodyIsRefused) {
  for (std::string header : {"Content-Length: 0", "content-length: 5", "Transfer-Encoding: chunked",
                             "TRANSFER-ENCODING: x"}) {
    UpgradeRequest r;
    auto res = parse(replace(kGood, "X-Custom:  spaced value ", header), r);
    EXPECT_EQ(res.kind, RequestParse::kReject) << header;
    EXPECT_EQ(res.status, 400) << header;
  }
}

TEST(Upgrade, OversizedHeaderIs431EvenBeforeItEnds) {
  UpgradeRequest r;
  std::string big = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(9000, 'a');
  auto res = parse(big, r);
  EXPECT_EQ(res.kind, RequestParse::kReject);
  EXPECT_EQ(res.status, 431);
  EXPECT_EQ(parse(kGood, r, kGood.size() - 1).status, 431);
  EXPECT_EQ(parse(kGood, r, kGood.size()).kind, RequestParse::kUpgrade);
}

TEST(Upgrade, HealthCheck) {
  UpgradeRequest r;
  EXPECT_EQ(parse("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", r).kind, RequestParse::kPlainGet);
  EXPECT_EQ(parse("GET /healthz?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n", r).kind,
            RequestParse::kPlainGet);
}

TEST(Upgrade, APlainGetIsReportedWithItsTarget) {
  // The parser only says "plain GET of X"; the endpoint answers /healthz, a page, or 426.
  UpgradeRequest r;
  const std::string plain = "GET /?room=1 HTTP/1.1\r\nHost: x\r\n\r\n";  // r views into it
  auto res = parse(plain, r);
  EXPECT_EQ(res.kind, RequestParse::kPlainGet);
  EXPECT_EQ(r.target, "/?room=1");
  EXPECT_EQ(target_path(r.target), "/");
  EXPECT_EQ(target_path("/app.js"), "/app.js");
  // What a browser sends for a page: "Connection: keep-alive" is no upgrade attempt. Before,
  // any Connection header made it one, refused 426 for want of Upgrade.
  std::string browser =
      "GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nConnection: keep-alive\r\n"
      "Accept: text/html\r\nUser-Agent: Mozilla/5.0\r\n\r\n";
  res = parse(browser, r);
  EXPECT_EQ(res.kind, RequestParse::kPlainGet);
  EXPECT_EQ(res.consumed, browser.size());
  EXPECT_EQ(r.target, "/index.html");
  // Still refused: a plain GET with a body, or no Host; an upgrade attempt missing a part.
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", r).kind,
            RequestParse::kReject);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\n\r\n", r).kind, RequestParse::kReject);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\r\n", r).status, 426);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", r).kind,
            RequestParse::kReject);
}

TEST(Upgrade, PageHead) {
  char out[kMaxResponseFixed + 64];
  std::string head(out, write_page_head(out, sizeof out, "text/html; charset=utf-8", 12345));
  EXPECT_EQ(head,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            "Content-Length: 12345\r\nCache-Control: no-cache\r\n"
            "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(write_page_head(out, 40, "text/html", 1), 0u);  // cut short: nothing to send
}

TEST(Upgrade, Responses) {
  char out[kMaxResponseFixed + 256];
  std::string ok(out, write_switching_protocols(out, sizeof out, "dGhlIHNhbXBsZSBub25jZQ==", ""));
  EXPECT_EQ(ok,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  std::string proto(out,
                    write_switching_protocols(out, sizeof out, "dGhlIHNhbXBsZSBub25jZQ==", "chat"));
  EXPECT_NE(proto.find("Sec-WebSocket-Protocol: chat\r\n"), std::string::npos);
  std::string e426(out, write_http_error(out, sizeof out, 426, "version"));
  EXPECT_EQ(e426.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0), 0u);
  EXPECT_NE(e426.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_NE(e426.find("Content-Length: 8\r\n"), std::string::npos);
  std::string health(out, write_health(out, sizeof out));
  EXPECT_EQ(health.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
}

TEST(Upgrade, ResponsesCarryExtensionsAndExtraHeaders) {
  char out[kMaxResponseFixed + 256];
  std::string ok(out, write_switching_protocols(out, sizeof out, "dGhlIHNhbXBsZSBub25jZQ==", "chat",
                                                "permessage-deflate; server_no_context_takeover",
                                                "X-Served-By: edge1\r\n"));
  EXPECT_EQ(ok,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: chat\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
            "X-Served-By: edge1\r\n\r\n");
  std::string e401(out, write_http_error(out, sizeof out, 401, "token required",
                                         "WWW-Authenticate: Bearer\r\nRetry-After: 5\r\n"));
  EXPECT_EQ(e401,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n"
            "Connection: close\r\nWWW-Authenticate: Bearer\r\nRetry-After: 5\r\n\r\n"
            "token required\n");
  for (auto [status, text] :
       std::vector<std::pair<int, std::string>>{{404, "Not Found"},
                                                {408, "Request Timeout"},
                                                {413, "Content Too Large"},
                                                {500, "Internal Server Error"},
                                                {502, "Bad Gateway"},
                                                {504, "Gateway Timeout"}}) {
    std::string e(out, write_http_error(out, sizeof out, static_cast<std::uint16_t>(status), ""));
    EXPECT_EQ(e.rfind("HTTP/1.1 " + std::to_string(status) + " " + text + "\r\n", 0), 0u) << e;
  }
}

TEST(Upgrade, WritersNeverPassTheirCapacity) {
  // Every capacity short of the whole response writes nothing usable (0) and not one byte past
  // `cap`; the exact size fits.
  std::string full_ok, full_err;
  {
    char out[1024];
    full_ok.assign(out, write_switching_protocols(
                            out, sizeof out, "dGhlIHNhbXBsZSBub25jZQ==", "chat", "x", "A: b\r\n"));
    full_err.assign(out, write_http_error(out, sizeof out, 503, "busy", "Retry-After: 1\r\n"));
  }
  for (std::size_t cap = 0; cap <= full_ok.size(); ++cap) {
    std::string out(full_ok.size() + 16, '#');
    std::size_t n = write_switching_protocols(out.data(), cap, "dGhlIHNhbXBsZSBub25jZQ==", "chat",
                                              "x", "A: b\r\n");
    EXPECT_EQ(n, cap == full_ok.size() ? cap : 0u) << cap;
    EXPECT_EQ(out.substr(cap), std::string(out.size() - cap, '#')) << cap;
  }
  for (std::size_t cap = 0; cap <= full_err.size(); ++cap) {
    std::string out(full_err.size() + 16, '#');
    std::size_t n = write_http_error(out.data(), cap, 503, "busy", "Retry-After: 1\r\n");
    EXPECT_EQ(n, cap == full_err.size() ? cap : 0u) << cap;
    EXPECT_EQ(out.substr(cap), std::string(out.size() - cap, '#')) << cap;
  }
  // The documented rule: kMaxResponseFixed plus the variable fields is always enough.
  std::string big(200, 'p');
  std::vector<char> out(kMaxResponseFixed + 3 * big.size());
  EXPECT_GT(
      write_switching_protocols(out.data(), out.size(), "dGhlIHNhbXBsZSBub25jZQ==", big, big, big),
      0u);
  EXPECT_GT(write_http_error(out.data(), kMaxResponseFixed + 128 + big.size(), 426, big, big), 0u);
}

TEST(Upgrade, ExtensionOffersAreReadOverEveryHeaderLine) {
  std::string s = replace(kGood, "X-Custom:  spaced value \r\n",
                          "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, "
                          "x-a\r\nX-Other: 1\r\nsec-websocket-extensions: x-b; p=\"1\"\r\n");
  UpgradeRequest r;
  ASSERT_EQ(parse(s, r).kind, RequestParse::kUpgrade);
  std::vector<std::string> names;
  r.for_each_extension([&](const Extension& e) {
    std::string n(e.name);
    for_each_param(e, [&](const ExtensionParam& p) {
      n.append(";").append(p.name);
      if (p.has_value) n.append("=").append(p.value);
    });
    names.push_back(n);
  });
  EXPECT_EQ(names, (std::vector<std::string>{"permessage-deflate;client_max_window_bits", "x-a",
                                             "x-b;p=1"}));
  std::vector<std::string> lines;
  r.for_each_header("Sec-WebSocket-Extensions", [&](std::string_view v) { lines.emplace_back(v); });
  EXPECT_EQ(lines.size(), 2u);
  std::size_t from = 0;
  std::string_view v = "untouched";
  EXPECT_FALSE(r.next_header("missing", from, v));
  EXPECT_EQ(v, "untouched");
}

TEST(Upgrade, MalformedExtensionOffersAreRefused) {
  for (std::string value :
       {"permessage-deflate;", "a b", "a; p=", "a; p=\"x\\y\"", "a; =1", "a;; b"}) {
    std::string s =
        replace(kGood, "X-Custom:  spaced value \r\n",
                "Sec-WebSocket-Extensions: ok\r\nSec-WebSocket-Extensions: " + value + "\r\n");
    UpgradeRequest r;
    auto res = parse(s, r);
    EXPECT_EQ(res.kind, RequestParse::kReject) << value;
    EXPECT_EQ(res.status, 400) << value;
  }
}

TEST(Upgrade, ClientRoundTrip) {
  ClientKey key = make_client_key();
  std::string_view k(key.data(), key.size());
  char req[1024];
  std::string request(req, write_upgrade_request(req, sizeof req, "h:1", "/p", k, "chat"));
  UpgradeRequest r;
  ASSERT_EQ(parse(request, r).kind, RequestParse::kUpgrade);
  EXPECT_EQ(r.key, k);
  EXPECT_EQ(r.protocols, "chat");
  char resp[kMaxResponseFixed + 256];
  std::string response(resp, write_switching_protocols(resp, sizeof resp, r.key, "chat"));
  const std::string with_tail = response + "tail";  // ok.protocol points into it
  auto ok = parse_upgrade_response(with_tail, 8192, k);
  EXPECT_EQ(ok.kind, RequestParse::kUpgrade);
  EXPECT_EQ(ok.consumed, response.size());
  EXPECT_EQ(ok.protocol, "chat");
  EXPECT_EQ(ok.extensions, "");
  ClientKey other = make_client_key();
  EXPECT_EQ(parse_upgrade_response(response, 8192, {other.data(), other.size()}).kind,
            RequestParse::kReject);
  EXPECT_EQ(parse_upgrade_response("HTTP/1.1 403 Forbidden\r\n\r\n", 8192, k).status, 403);
  EXPECT_EQ(parse_upgrade_response("HTTP/1.1 101 Switching", 8192, k).kind,
            RequestParse::kIncomplete);
}

TEST(Upgrade, ClientReadsTheServersExtensions) {
  ClientKey key = make_client_key();
  std::string_view k(key.data(), key.size());
  char resp[kMaxResponseFixed + 256];
  std::string response(
      resp, write_switching_protocols(resp, sizeof resp, k, "", "permessage-deflate; x=\"15\""));
  auto ok = parse_upgrade_response(response, 8192, k);
  EXPECT_EQ(ok.kind, RequestParse::kUpgrade);
  EXPECT_EQ(ok.extensions, "permessage-deflate; x=\"15\"");
  std::string bad(resp, write_switching_protocols(resp, sizeof resp, k, "", "a b"));
  EXPECT_EQ(parse_upgrade_response(bad, 8192, k).kind, RequestParse::kReject);
  // A second line would be invisible through one view: refused rather than half-read.
  std::string two(resp, write_switching_protocols(resp, sizeof resp, k, "", "a",
                                                  "Sec-WebSocket-Extensions: b\r\n"));
  EXPECT_EQ(parse_upgrade_response(two, 8192, k).kind, RequestParse::kReject);
}

TEST(Upgrade, TokenLists) {
  EXPECT_TRUE(has_token("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(has_token("Upgrade", "upgrade"));
  EXPECT_TRUE(has_token(" a ,\tb ", "b"));
  EXPECT_FALSE(has_token("upgrades", "upgrade"));
  EXPECT_FALSE(has_token("", "upgrade"));
}

}  // namespace
}  // namespace wsedge::protocol
