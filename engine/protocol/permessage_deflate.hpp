#pragma once
// permessage-deflate negotiation (RFC 7692 §5, §7.1) over the byte views of the
// Sec-WebSocket-Extensions headers: which offer a server accepts and what it answers, and
// whether a client accepts the server's answer. Pure: no sockets, no zlib (engine/deflate/
// compresses, engine/ws/ decides per connection). docs/DEFLATE.md §2 and §6.
#include <cstdint>
#include <span>
#include <string_view>

#include "extensions.hpp"
#include "http_upgrade.hpp"

namespace wsedge::protocol {

inline constexpr std::string_view kPermessageDeflate = "permessage-deflate";

// One permessage-deflate offer or answer, as parsed.
struct DeflateParams {
  static constexpr std::uint8_t kNoValue = 0xff;  // client_max_window_bits offered bare
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  std::uint8_t server_max_window_bits = 0;  // 8..15; 0 when absent
  std::uint8_t client_max_window_bits = 0;  // 8..15, kNoValue (offers only); 0 when absent
};

enum class DeflateSide : std::uint8_t { kOffer, kAnswer };

// The parameters of one permessage-deflate extension. False when an offer must be declined or
// an answer refused (RFC 7692 §5, §7.1): a parameter not defined, one given twice, a value on
// a *_no_context_takeover, a window that is not a decimal 8..15 without leading zeros (a quoted
// value counts as its contents), server_max_window_bits without a value, and in an answer
// client_max_window_bits without a value.
bool parse_deflate_params(const Extension& e, DeflateSide side, DeflateParams& out);

// What one connection agreed, from this endpoint's side: what it compresses (send) and what
// it inflates (recv), whichever role it has.
struct DeflateAgreement {
  bool send_context = false;  // our messages share one LZ77 window (context takeover)
  bool recv_context = false;  // the peer's do
  // The peer's inflate window for what we send: our distances must stay within 2^bits.
  std::uint8_t send_window_bits = 15;
  std::uint8_t recv_window_bits = 15;  // the window our inflater needs
};

// What a server is willing to give one connection.
struct DeflateServerPolicy {
  bool context_takeover = false;  // the connection's mode is context-takeover
  // The core's budget has room for a deflate stream / an inflate stream (window 15).
  bool send_context_fits = true;
  bool recv_context_fits = true;
};

// Room negotiate_deflate needs for its answer.
inline constexpr std::size_t kMaxDeflateAnswer = 128;

// Server: the first acceptable permessage-deflate offer among all of `req`'s
// Sec-WebSocket-Extensions headers, in order (the others, and offers of other extensions, are
// declined). True with the agreement and the answer (written into `out`, a view of it in
// `answer`); false when no offer is acceptable: the upgrade goes on without the extension.
bool negotiate_deflate(const UpgradeRequest& req, const DeflateServerPolicy& policy,
                       DeflateAgreement& agreement, std::span<char, kMaxDeflateAnswer> out,
                       std::string_view& answer);

// Client: the Sec-WebSocket-Extensions value a client offers.
std::string_view deflate_client_offer(bool context_takeover);

enum class DeflateAnswer : std::uint8_t {
  kNone,      // no extension answered: messages go uncompressed
  kAccepted,  // `agreement` filled
  kInvalid,   // fail the connection (RFC 7692 §5): an extension or parameter not offered
              // (server_max_window_bits aside, §7.1.2.1), an invalid value, more than one
};
// Client: the server's Sec-WebSocket-Extensions answer to deflate_client_offer(context_takeover).
DeflateAnswer accept_deflate_answer(std::string_view extensions, bool context_takeover,
                                    DeflateAgreement& agreement);

}  // namespace wsedge::protocol
