// Where find_token looks for a token in an upgrade request, in which order, and how
// strip_token_param keeps a token out of the target forwarded to backends and logs.
#include "auth/token_source.hpp"

#include <gtest/gtest.h>

#include <string>

namespace wsedge::auth {
namespace {

// A request with `target` and the header lines `headers` (each "Name: value\r\n").
struct Request {
  std::string bytes;
  protocol::UpgradeRequest req;
  Request(std::string_view target, std::string_view headers) {
    bytes = std::string("GET ")
                .append(target)
                .append(" HTTP/1.1\r\nHost: x\r\n")
                .append("Upgrade: websocket\r\nConnection: Upgrade\r\n")
                .append("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
                .append("Sec-WebSocket-Version: 13\r\n")
                .append(headers)
                .append("\r\n");
    auto r = protocol::parse_upgrade_request(bytes, 16384, req);
    EXPECT_EQ(r.kind, protocol::RequestParse::kUpgrade) << r.reason;
  }
  // What find_token found, copied: a test keeps it after the (temporary) request is gone.
  struct Found {
    std::string token;
    TokenFrom from;
  };
  Found find(const TokenSources& s = {}) const {
    FoundToken f = find_token(req, s);
    // The token is a view into the request's bytes, never a copy.
    if (!f.token.empty()) {
      EXPECT_TRUE(f.token.data() >= bytes.data() &&
                  f.token.data() + f.token.size() <= bytes.data() + bytes.size());
    }
    return {std::string(f.token), f.from};
  }
};

TEST(AuthTokenSource, AuthorizationBearer) {
  for (std::string_view h : {"Authorization: Bearer a.b.c\r\n", "authorization: bearer a.b.c\r\n",
                             "Authorization: BEARER   a.b.c  \r\n"}) {
    Request::Found f = Request("/", h).find();
    EXPECT_EQ(f.from, TokenFrom::kHeader) << h;
    EXPECT_EQ(f.token, "a.b.c") << h;
  }
  for (std::string_view h : {"Authorization: Basic dXNlcjpwdw==\r\n", "Authorization: Bearer\r\n",
                             "Authorization: Bearera.b.c\r\n", "Authorization: Bearer \r\n"})
    EXPECT_EQ(Request("/", h).find().from, TokenFrom::kNone) << h;
  // A second Authorization line carrying Bearer is found too.
  Request::Found f =
      Request("/", "Authorization: Basic x\r\nAuthorization: Bearer t.u.v\r\n").find();
  EXPECT_EQ(f.token, "t.u.v");
}

TEST(AuthTokenSource, SubprotocolEntry) {
  Request::Found f = Request("/", "Sec-WebSocket-Protocol: chat, bearer.a.b.c\r\n").find();
  EXPECT_EQ(f.from, TokenFrom::kProtocol);
  EXPECT_EQ(f.token, "a.b.c");
  f = Request("/", "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: bearer.x.y.z , v2\r\n")
          .find();
  EXPECT_EQ(f.token, "x.y.z");
  EXPECT_EQ(Request("/", "Sec-WebSocket-Protocol: chat, bearer.\r\n").find().from,
            TokenFrom::kNone);
}

TEST(AuthTokenSource, CookieAmongSeveral) {
  Request::Found f =
      Request("/", "Cookie: a=1; wsedge_token=t.o.k;b=2\r\nCookie: wsedge_token=late.r.x\r\n")
          .find();
  EXPECT_EQ(f.from, TokenFrom::kCookie);
  EXPECT_EQ(f.token, "t.o.k");
  f = Request("/", "Cookie: x_wsedge_token=no; other=1\r\nCookie:  wsedge_token = \"q.u.o\" \r\n")
          .find();
  EXPECT_EQ(f.token, "q.u.o");
  EXPECT_EQ(Request("/", "Cookie: wsedge_token=\r\n").find().from, TokenFrom::kNone);
  TokenSources s;
  s.cookie_name = "sid";
  EXPECT_EQ(Request("/", "Cookie: wsedge_token=a; sid=s.i.d\r\n").find(s).token, "s.i.d");
}

TEST(AuthTokenSource, QueryParameter) {
  EXPECT_EQ(Request("/chat?token=a.b.c", "").find().token, "a.b.c");
  Request::Found f = Request("/chat?room=1&token=a.b.c&x=2", "").find();
  EXPECT_EQ(f.from, TokenFrom::kQuery);
  EXPECT_EQ(f.token, "a.b.c");
  EXPECT_EQ(Request("/chat?room=1&token=a.b.c", "").find().token, "a.b.c");
  EXPECT_EQ(Request("/chat?mytoken=a&token_x=b", "").find().from, TokenFrom::kNone);
  EXPECT_EQ(Request("/chat?token=a%2Eb.c", "").find().from, TokenFrom::kNone);
  EXPECT_EQ(Request("/chat?token=", "").find().from, TokenFrom::kNone);
  EXPECT_EQ(Request("/chat", "").find().from, TokenFrom::kNone);
}

TEST(AuthTokenSource, PrecedenceAndDisabledSources) {
  Request r("/?token=q.q.q",
            "Cookie: wsedge_token=c.c.c\r\nSec-WebSocket-Protocol: bearer.p.p.p\r\n"
            "Authorization: Bearer h.h.h\r\n");
  TokenSources s;
  EXPECT_EQ(r.find(s).token, "h.h.h");
  s.header = false;
  EXPECT_EQ(r.find(s).token, "p.p.p");
  s.protocol = false;
  EXPECT_EQ(r.find(s).token, "c.c.c");
  s.cookie = false;
  EXPECT_EQ(r.find(s).token, "q.q.q");
  s.query = false;
  EXPECT_EQ(r.find(s).from, TokenFrom::kNone);
}

TEST(AuthTokenSource, StripTokenParam) {
  std::string out;
  auto strip = [&](std::string_view t) { return std::string(strip_token_param(t, out)); };
  EXPECT_EQ(strip("/chat?token=a.b.c"), "/chat");
  EXPECT_EQ(strip("/chat?room=1&token=a.b.c"), "/chat?room=1");
  EXPECT_EQ(strip("/chat?room=1&token=a.b.c&x=2"), "/chat?room=1&x=2");
  EXPECT_EQ(strip("/chat?token=a&room=1&token=b"), "/chat?room=1");
  EXPECT_EQ(strip("/chat?token"), "/chat");
  EXPECT_EQ(strip("/chat?token=a#frag"), "/chat#frag");
  // Without a token parameter the view is the target itself, not a copy.
  std::string_view plain = "/chat?room=1&tokens=2";
  EXPECT_EQ(strip_token_param(plain, out).data(), plain.data());
  std::string_view bare = "/chat";
  EXPECT_EQ(strip_token_param(bare, out).data(), bare.data());
}

}  // namespace
}  // namespace wsedge::auth
