#include "permessage_deflate.hpp"

#include <strings.h>

#include <cstring>

namespace wsedge::protocol {
namespace {

// RFC 7692 §7.1.2: "a decimal integer value without leading zeroes between 8 to 15".
std::uint8_t window_bits(std::string_view v) {
  if (v.size() == 1 && v[0] >= '8' && v[0] <= '9') return static_cast<std::uint8_t>(v[0] - '0');
  if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return static_cast<std::uint8_t>(10 + v[1] - '0');
  return 0;
}

bool is_deflate(const Extension& e) {
  return e.name.size() == kPermessageDeflate.size() &&
         strncasecmp(e.name.data(), kPermessageDeflate.data(), e.name.size()) == 0;
}

// Appends to a fixed buffer that is always large enough (kMaxDeflateAnswer covers the longest
// answer: the name, both no_context_takeover flags and both windows).
struct Answer {
  std::span<char, kMaxDeflateAnswer> out;
  std::size_t len = 0;
  void add(std::string_view s) {
    std::memcpy(out.data() + len, s.data(), s.size());
    len += s.size();
  }
  void add_bits(std::string_view name, std::uint8_t bits) {
    add(name);
    if (bits >= 10) add("1");
    char digit = static_cast<char>('0' + bits % 10);
    add({&digit, 1});
  }
};

}  // namespace

bool parse_deflate_params(const Extension& e, DeflateSide side, DeflateParams& out) {
  out = {};
  bool ok = true;
  bool seen[4] = {};
  for_each_param(e, [&](const ExtensionParam& p) {
    auto once = [&](int i) {
      if (seen[i]) ok = false;
      seen[i] = true;
    };
    if (p.name == "server_no_context_takeover") {
      once(0);
      ok = ok && !p.has_value;
      out.server_no_context_takeover = true;
    } else if (p.name == "client_no_context_takeover") {
      once(1);
      ok = ok && !p.has_value;
      out.client_no_context_takeover = true;
    } else if (p.name == "server_max_window_bits") {
      once(2);
      out.server_max_window_bits = p.has_value ? window_bits(p.value) : 0;
      ok = ok && out.server_max_window_bits != 0;
    } else if (p.name == "client_max_window_bits") {
      once(3);
      if (p.has_value) {
        out.client_max_window_bits = window_bits(p.value);
        ok = ok && out.client_max_window_bits != 0;
      } else {
        out.client_max_window_bits = DeflateParams::kNoValue;
        ok = ok && side == DeflateSide::kOffer;
      }
    } else {
      ok = false;
    }
  });
  return ok;
}

bool negotiate_deflate(const UpgradeRequest& req, const DeflateServerPolicy& policy,
                       DeflateAgreement& agreement, std::span<char, kMaxDeflateAnswer> out,
                       std::string_view& answer) {
  bool found = false;
  req.for_each_extension([&](const Extension& e) {
    DeflateParams o;
    if (found || !is_deflate(e) || !parse_deflate_params(e, DeflateSide::kOffer, o)) return;
    found = true;
    DeflateAgreement a;
    a.send_window_bits = o.server_max_window_bits ? o.server_max_window_bits : 15;
    // zlib has no raw 256-byte window, so a stream (context takeover) cannot keep to 8 bits.
    a.send_context = policy.context_takeover && !o.server_no_context_takeover &&
                     policy.send_context_fits && a.send_window_bits > 8;
    a.recv_context =
        policy.context_takeover && !o.client_no_context_takeover && policy.recv_context_fits;
    // Without context the per-core inflater's 32 KiB window serves any client window.
    bool limit_client = a.recv_context && o.client_max_window_bits;
    if (limit_client && o.client_max_window_bits != DeflateParams::kNoValue)
      a.recv_window_bits = o.client_max_window_bits;
    Answer w{out};
    w.add(kPermessageDeflate);
    // A server may always add either no_context_takeover (RFC 7692 §7.1.1): it is how an
    // edge keeps idle connections free of compression state.
    if (!a.send_context) w.add("; server_no_context_takeover");
    if (!a.recv_context) w.add("; client_no_context_takeover");
    if (o.server_max_window_bits) w.add_bits("; server_max_window_bits=", a.send_window_bits);
    if (limit_client) w.add_bits("; client_max_window_bits=", a.recv_window_bits);
    agreement = a;
    answer = {out.data(), w.len};
  });
  return found;
}

std::string_view deflate_client_offer(bool context_takeover) {
  return context_takeover ? "permessage-deflate; client_max_window_bits"
                          : "permessage-deflate; server_no_context_takeover; "
                            "client_no_context_takeover";
}

DeflateAnswer accept_deflate_answer(std::string_view extensions, bool context_takeover,
                                    DeflateAgreement& agreement) {
  int count = 0;
  bool ok = true;
  DeflateParams a;
  bool valid = for_each_extension(extensions, [&](const Extension& e) {
    ++count;
    ok = ok && is_deflate(e) && parse_deflate_params(e, DeflateSide::kAnswer, a);
  });
  if (!valid || count > 1 || !ok) return DeflateAnswer::kInvalid;
  if (count == 0) return DeflateAnswer::kNone;
  // Only what was offered may be answered (§7.1.2.2), and an offered server_no_context_takeover
  // must be accepted as such (§7.1.1.1). server_max_window_bits is the exception: a server may
  // name its window unasked (§7.1.2.1), and our inflater, at 15 bits, reads any smaller one
  // (failing such a server's answer lost the connection for nothing).
  if (a.client_max_window_bits && !context_takeover) return DeflateAnswer::kInvalid;
  if (!context_takeover && !a.server_no_context_takeover) return DeflateAnswer::kInvalid;
  DeflateAgreement g;
  if (a.client_max_window_bits) g.send_window_bits = a.client_max_window_bits;
  // As the server's side (negotiate_deflate): zlib has no raw 256-byte window, so at 8 bits
  // each message is compressed on its own, which any inflater reads. A stream would throw
  // from deflateInit2, out of the handshake and the core's loop.
  g.send_context = context_takeover && !a.client_no_context_takeover && g.send_window_bits > 8;
  g.recv_context = !a.server_no_context_takeover;
  agreement = g;
  return DeflateAnswer::kAccepted;
}

}  // namespace wsedge::protocol
