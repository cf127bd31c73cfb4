#pragma once
// Where a WebSocket client's token is in its upgrade request. Browsers cannot set headers on a
// WebSocket, so besides `Authorization: Bearer` a token may come as a subprotocol entry, a
// cookie or a query parameter. Views only: the token found points into the request's bytes.
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/protocol/http_upgrade.hpp"

namespace wsedge::auth {

enum class TokenFrom : std::uint8_t { kNone, kHeader, kProtocol, kCookie, kQuery };

struct TokenSources {
  bool header = true, protocol = true, cookie = true, query = true;
  std::string cookie_name = "wsedge_token";
};

struct FoundToken {
  std::string_view token;
  TokenFrom from = TokenFrom::kNone;
};

// Looks, in this order, for `Authorization: Bearer <t>` (scheme case-insensitive), a
// Sec-WebSocket-Protocol entry `bearer.<t>` (over all lines of that header), the cookie
// `cookie_name` in any Cookie header, then the `token` parameter of the request-target's query
// (a value holding '%' counts as absent: base64url and '.' never need percent-encoding, and
// decoding would need a copy). A request carrying several different tokens gets the first one
// found in that order, and only that one is verified: the others are ignored, not compared.
FoundToken find_token(const protocol::UpgradeRequest& req, const TokenSources& s);

// The request-target without its `token` query parameter(s), so that the path forwarded to
// backends and logs never holds a token: written into `out` and returned as a view of it, or
// `target` itself when it has none.
std::string_view strip_token_param(std::string_view target, std::string& out);

}  // namespace wsedge::auth
