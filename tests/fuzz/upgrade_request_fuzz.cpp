// Fuzzes the opening handshake parsers: the server's parse_upgrade_request (whole, and as a
// server sees it, first a prefix and then everything) and the client's parse_upgrade_response,
// and permessage-deflate's negotiation on what they accept (both roles).
// The input's last bytes pick the header size limit, the split point and a header name to look
// up; the rest is the HTTP.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/protocol/extensions.hpp"
#include "engine/protocol/http_upgrade.hpp"
#include "engine/protocol/permessage_deflate.hpp"
#include "fuzz_check.hpp"

namespace {

using wsedge::fuzz::check;
using wsedge::fuzz::inside;
using namespace wsedge::protocol;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// has_token must find every non-empty element of the list, split here independently.
void check_tokens(std::string_view list) {
  for (std::string_view rest = list;;) {
    std::size_t comma = rest.find(',');
    std::string_view token = trim(rest.substr(0, comma));
    if (!token.empty()) check(has_token(list, token));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
}

// Whatever a server answers an offer, its own client role accepts, with the same agreement seen
// from the other side; a window's bits are always 8..15. And any header value as a server's
// answer is refused or accepted without harm.
void check_deflate(const UpgradeRequest& req, std::string_view any) {
  for (bool context : {false, true}) {
    for (bool fits : {false, true}) {
      DeflateServerPolicy policy{context, fits, !fits};
      DeflateAgreement server;
      char out[kMaxDeflateAnswer];
      std::string_view answer;
      if (!negotiate_deflate(req, policy, server, out, answer)) continue;
      check(answer.size() <= kMaxDeflateAnswer && answer.starts_with(kPermessageDeflate));
      check(server.send_window_bits >= 8 && server.send_window_bits <= 15);
      check(server.recv_window_bits >= 8 && server.recv_window_bits <= 15);
      check(context || (!server.send_context && !server.recv_context));
      // Our client offers one of two forms; an answer to another offer may be one our client
      // refuses (it did not offer that), but never one it misreads.
      DeflateAgreement client;
      if (accept_deflate_answer(answer, true, client) == DeflateAnswer::kAccepted) {
        check(client.recv_context == server.send_context);
        // A client may always compress each message on its own (ours does at 8 bits, which
        // zlib cannot keep as a stream); it keeps context only where the server keeps it.
        check(!client.send_context || server.recv_context);
      }
    }
  }
  DeflateAgreement ignored;
  accept_deflate_answer(any, false, ignored);
  accept_deflate_answer(any, true, ignored);
}

void check_request(std::string_view in, const RequestResult& r, const UpgradeRequest& req,
                   std::string_view probe) {
  check(r.consumed <= in.size());
  if (r.kind == RequestParse::kIncomplete) {
    check(r.consumed == 0);
    return;
  }
  if (r.kind == RequestParse::kReject) {
    check(r.reason != nullptr && r.status >= 400 && r.status < 500);
    return;
  }
  check(r.kind == RequestParse::kUpgrade || r.kind == RequestParse::kPlainGet);
  // A request ends with its blank line, and everything the parser returns is inside it.
  check(r.consumed >= 4 && in.substr(r.consumed - 4, 4) == "\r\n\r\n");
  const char* b = in.data();
  const char* e = in.data() + r.consumed;
  for (std::string_view v :
       {req.method, req.target, req.host, req.key, req.origin, req.protocols, req.headers})
    check(inside(v, b, e));
  check(!req.target.empty() && req.target.front() == '/');
  check(req.method == "GET" && !req.host.empty());
  check(req.header("Host") == req.host && req.header("hOST").data() == req.host.data());
  std::string_view found = req.header(probe);
  check(inside(found, req.headers.data(), req.headers.data() + req.headers.size()));
  if (r.kind == RequestParse::kUpgrade) {
    check(r.status == 101 && req.key.size() == 24);
    check(req.header("sec-websocket-key") == req.key);
  }
  check_tokens(req.protocols);
  check_tokens(req.header("connection"));
  // An accepted request's extension offers parse (malformed ones are refused with 400), and
  // every name and value lies inside its header line.
  const char* hb = req.headers.data();
  const char* he = hb + req.headers.size();
  req.for_each_extension([&](const Extension& x) {
    check(!x.name.empty() && inside(x.name, hb, he) && inside(x.params, hb, he));
    for_each_param(x, [&](const ExtensionParam& p) {
      check(!p.name.empty() && inside(p.name, hb, he) && inside(p.value, hb, he));
    });
  });
  // On any header value, the parser and the validator agree.
  bool parsed = for_each_extension(found, [](const Extension&) {});
  check(parsed == valid_extensions(found));
  check_deflate(req, found);
}

bool same(const RequestResult& a, const RequestResult& b) {
  return a.kind == b.kind && a.status == b.status && a.consumed == b.consumed &&
         std::string_view(a.reason ? a.reason : "") == std::string_view(b.reason ? b.reason : "");
}

// A field of `a` (parsed from `pa`) at the same place as that of `b` (parsed from `pb`).
bool same_view(std::string_view a, const char* pa, std::string_view b, const char* pb) {
  if (a.empty() || b.empty()) return a.empty() && b.empty();
  return a.data() - pa == b.data() - pb && a.size() == b.size();
}

constexpr std::string_view kProbes[] = {"host",
                                        "Upgrade",
                                        "connection",
                                        "sec-websocket-key",
                                        "ORIGIN",
                                        "x-a",
                                        "",
                                        "sec-websocket-protocol",
                                        "Sec-WebSocket-Extensions"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider fdp(data, size);
  const std::size_t max_header = fdp.ConsumeIntegralInRange<std::size_t>(1, 8192);
  const std::size_t split_raw = fdp.ConsumeIntegral<std::uint16_t>();
  const std::string_view probe = fdp.PickValueInArray(kProbes);
  const std::string http = fdp.ConsumeRemainingBytesAsString();
  const std::string_view in = http;

  UpgradeRequest whole_req;
  RequestResult whole = parse_upgrade_request(in, max_header, whole_req);
  check_request(in, whole, whole_req, probe);

  // A server parses what has arrived so far and again when more comes: the answer for the
  // prefix must be "incomplete" or the final answer already.
  const std::size_t split = split_raw % (in.size() + 1);
  std::string_view prefix = in.substr(0, split);
  UpgradeRequest part_req;
  RequestResult part = parse_upgrade_request(prefix, max_header, part_req);
  check_request(prefix, part, part_req, probe);
  if (part.kind == RequestParse::kIncomplete) {
    if (whole.kind != RequestParse::kIncomplete && whole.status != 431)
      check(whole.consumed > split);
  } else if (part.status == 431) {
    check(whole.status == 431);
  } else {
    check(same(part, whole));
    if (part.kind != RequestParse::kReject) {
      const char* a = prefix.data();
      const char* b = in.data();
      check(same_view(part_req.target, a, whole_req.target, b) &&
            same_view(part_req.host, a, whole_req.host, b) &&
            same_view(part_req.key, a, whole_req.key, b) &&
            same_view(part_req.origin, a, whole_req.origin, b) &&
            same_view(part_req.protocols, a, whole_req.protocols, b) &&
            same_view(part_req.headers, a, whole_req.headers, b));
    }
  }

  // The client side: the 101 must carry the accept value of this fixed key.
  ResponseResult resp = parse_upgrade_response(in, max_header, "dGhlIHNhbXBsZSBub25jZQ==");
  check(resp.consumed <= in.size());
  if (resp.kind == RequestParse::kIncomplete) check(resp.consumed == 0);
  if (resp.kind == RequestParse::kUpgrade) {
    check(resp.status == 101 && resp.consumed >= 4);
    check(inside(resp.protocol, in.data(), in.data() + resp.consumed));
  } else if (resp.kind == RequestParse::kReject) {
    check(resp.reason != nullptr);
  }
  return 0;
}
