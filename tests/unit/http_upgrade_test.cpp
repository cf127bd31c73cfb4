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
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426},        // plain HTTP to a WebSocket path
  };
  for (const Case& c : cases) {
    UpgradeRequest r;
    auto res = parse(c.request, r);
    EXPECT_EQ(res.kind, RequestParse::kReject) << c.request;
    EXPECT_EQ(res.status, c.status) << c.request;
    EXPECT_NE(res.reason, nullptr);
  }
}

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
  EXPECT_EQ(parse("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", r).kind, RequestParse::kHealth);
  EXPECT_EQ(parse("GET /healthz?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n", r).kind,
            RequestParse::kHealth);
}

TEST(Upgrade, Responses) {
  char out[kMaxResponseFixed + 256];
  std::string ok(out, write_switching_protocols(out, "dGhlIHNhbXBsZSBub25jZQ==", ""));
  EXPECT_EQ(ok,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  std::string proto(out, write_switching_protocols(out, "dGhlIHNhbXBsZSBub25jZQ==", "chat"));
  EXPECT_NE(proto.find("Sec-WebSocket-Protocol: chat\r\n"), std::string::npos);
  std::string e426(out, write_http_error(out, 426, "version"));
  EXPECT_EQ(e426.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0), 0u);
  EXPECT_NE(e426.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_NE(e426.find("Content-Length: 8\r\n"), std::string::npos);
  std::string health(out, write_health(out));
  EXPECT_EQ(health.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
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
  std::string response(resp, write_switching_protocols(resp, r.key, "chat"));
  const std::string with_tail = response + "tail";  // ok.protocol points into it
  auto ok = parse_upgrade_response(with_tail, 8192, k);
  EXPECT_EQ(ok.kind, RequestParse::kUpgrade);
  EXPECT_EQ(ok.consumed, response.size());
  EXPECT_EQ(ok.protocol, "chat");
  ClientKey other = make_client_key();
  EXPECT_EQ(parse_upgrade_response(response, 8192, {other.data(), other.size()}).kind,
            RequestParse::kReject);
  EXPECT_EQ(parse_upgrade_response("HTTP/1.1 403 Forbidden\r\n\r\n", 8192, k).status, 403);
  EXPECT_EQ(parse_upgrade_response("HTTP/1.1 101 Switching", 8192, k).kind,
            RequestParse::kIncomplete);
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
