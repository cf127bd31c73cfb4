#include "engine/protocol/permessage_deflate.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wsedge::protocol {
namespace {

// The server's answer to an upgrade carrying these Sec-WebSocket-Extensions lines, or "-"
// when it declines every offer; `a` gets the agreement.
std::string answer(std::vector<std::string> lines, DeflateServerPolicy policy,
                   DeflateAgreement* a = nullptr) {
  std::string req =
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
  for (const std::string& l : lines) req.append("Sec-WebSocket-Extensions: ").append(l) += "\r\n";
  req += "\r\n";
  UpgradeRequest r;
  EXPECT_EQ(parse_upgrade_request(req, 8192, r).kind, RequestParse::kUpgrade) << req;
  char out[kMaxDeflateAnswer];
  std::string_view text;
  DeflateAgreement agreed;
  if (!negotiate_deflate(r, policy, agreed, out, text)) return "-";
  if (a) *a = agreed;
  return std::string(text);
}

const DeflateServerPolicy kNoContext{};
const DeflateServerPolicy kContext{.context_takeover = true};

constexpr const char* kStateless =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

TEST(PermessageDeflate, NoContextModeAnswersEveryValidOfferStatelessBothWays) {
  DeflateAgreement a;
  EXPECT_EQ(answer({"permessage-deflate"}, kNoContext, &a), kStateless);
  EXPECT_FALSE(a.send_context);
  EXPECT_FALSE(a.recv_context);
  EXPECT_EQ(a.send_window_bits, 15);
  EXPECT_EQ(answer({"permessage-deflate; client_max_window_bits"}, kNoContext), kStateless);
  EXPECT_EQ(answer({"permessage-deflate; client_max_window_bits=9"}, kNoContext), kStateless);
  EXPECT_EQ(answer({"permessage-deflate; server_no_context_takeover"}, kNoContext), kStateless);
  EXPECT_EQ(answer({"permessage-deflate; client_no_context_takeover"}, kNoContext), kStateless);
  // The server's window is the client's to limit, and it is echoed back.
  for (int bits = 8; bits <= 15; ++bits) {
    std::string offer = "permessage-deflate; server_max_window_bits=" + std::to_string(bits);
    EXPECT_EQ(answer({offer}, kNoContext, &a),
              std::string(kStateless).append("; server_max_window_bits=") + std::to_string(bits));
    EXPECT_EQ(a.send_window_bits, bits);
  }
}

TEST(PermessageDeflate, ContextModeKeepsWhatTheClientAllows) {
  DeflateAgreement a;
  EXPECT_EQ(answer({"permessage-deflate"}, kContext, &a), "permessage-deflate");
  EXPECT_TRUE(a.send_context);
  EXPECT_TRUE(a.recv_context);
  EXPECT_EQ(a.recv_window_bits, 15);
  // What browsers offer: a bare client_max_window_bits lets the server pick the client's window.
  EXPECT_EQ(answer({"permessage-deflate; client_max_window_bits"}, kContext, &a),
            "permessage-deflate; client_max_window_bits=15");
  EXPECT_EQ(answer({"permessage-deflate; client_max_window_bits=10"}, kContext, &a),
            "permessage-deflate; client_max_window_bits=10");
  EXPECT_EQ(a.recv_window_bits, 10);
  EXPECT_EQ(answer({"permessage-deflate; server_no_context_takeover"}, kContext, &a),
            "permessage-deflate; server_no_context_takeover");
  EXPECT_FALSE(a.send_context);
  EXPECT_TRUE(a.recv_context);
  EXPECT_EQ(answer({"permessage-deflate; client_no_context_takeover; client_max_window_bits"},
                   kContext, &a),
            "permessage-deflate; client_no_context_takeover");
  EXPECT_FALSE(a.recv_context);
  EXPECT_EQ(answer({"permessage-deflate; server_max_window_bits=12"}, kContext, &a),
            "permessage-deflate; server_max_window_bits=12");
  EXPECT_TRUE(a.send_context);
  EXPECT_EQ(a.send_window_bits, 12);
  // zlib has no raw 256-byte window: no stream can keep to 8 bits, so no server context.
  EXPECT_EQ(answer({"permessage-deflate; server_max_window_bits=8"}, kContext, &a),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=8");
  EXPECT_FALSE(a.send_context);
}

TEST(PermessageDeflate, ABudgetWithoutRoomTurnsThatDirectionsContextOff) {
  DeflateAgreement a;
  EXPECT_EQ(answer({"permessage-deflate; client_max_window_bits"},
                   {.context_takeover = true, .send_context_fits = false}, &a),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=15");
  EXPECT_FALSE(a.send_context);
  EXPECT_TRUE(a.recv_context);
  EXPECT_EQ(answer({"permessage-deflate; client_max_window_bits"},
                   {.context_takeover = true, .recv_context_fits = false}, &a),
            "permessage-deflate; client_no_context_takeover");
  EXPECT_TRUE(a.send_context);
  EXPECT_FALSE(a.recv_context);
}

TEST(PermessageDeflate, InvalidOffersAreDeclinedAndTheNextIsTaken) {
  const char* invalid[] = {
      "permessage-deflate; foo",  // not a parameter of it
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",  // twice
      "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
      "permessage-deflate; server_no_context_takeover=1",  // a value where none belongs
      "permessage-deflate; client_no_context_takeover=\"x\"",
      "permessage-deflate; server_max_window_bits",  // a value is required
      "permessage-deflate; server_max_window_bits=7",
      "permessage-deflate; server_max_window_bits=16",
      "permessage-deflate; server_max_window_bits=010",  // leading zero
      "permessage-deflate; server_max_window_bits=abc",
      "permessage-deflate; server_max_window_bits=-9",
      "permessage-deflate; client_max_window_bits=7",
      "permessage-deflate; client_max_window_bits=\"16\"",
      "permessage-deflate; Server_No_Context_Takeover",  // parameter names are exact
  };
  for (const char* offer : invalid) {
    EXPECT_EQ(answer({offer}, kNoContext), "-") << offer;
    EXPECT_EQ(answer({offer}, kContext), "-") << offer;
    // Declining one offer goes on to the next, in the same header or another.
    EXPECT_EQ(answer({std::string(offer) + ", permessage-deflate; server_max_window_bits=10"},
                     kNoContext),
              std::string(kStateless) + "; server_max_window_bits=10")
        << offer;
    EXPECT_EQ(answer({offer, "permessage-deflate"}, kContext), "permessage-deflate") << offer;
  }
}

TEST(PermessageDeflate, TheFirstAcceptableOfferWinsAndOtherExtensionsAreIgnored) {
  EXPECT_EQ(answer({"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, kContext),
            "permessage-deflate; server_max_window_bits=10");
  EXPECT_EQ(answer({"x-webkit-deflate-frame", "permessage-deflate; client_no_context_takeover"},
                   kContext),
            "permessage-deflate; client_no_context_takeover");
  EXPECT_EQ(answer({"x-webkit-deflate-frame; no_context_takeover"}, kNoContext), "-");
  EXPECT_EQ(answer({}, kNoContext), "-");
  // Quoted values mean their contents (RFC 7692 §7.1), and the name is case-insensitive.
  EXPECT_EQ(answer({"PerMessage-Deflate; server_max_window_bits=\"9\""}, kNoContext),
            std::string(kStateless) + "; server_max_window_bits=9");
}

TEST(PermessageDeflate, TheLongestAnswerFits) {
  std::string a =
      answer({"permessage-deflate; server_max_window_bits=15; client_max_window_bits=15"},
             {.context_takeover = true, .recv_context_fits = true});
  EXPECT_EQ(a, "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15");
  a = answer({"permessage-deflate; server_max_window_bits=8; client_max_window_bits=15"},
             {.context_takeover = true, .send_context_fits = true});
  EXPECT_LE(a.size(), kMaxDeflateAnswer);
}

DeflateAnswer client(std::string_view ext, bool context, DeflateAgreement* a = nullptr) {
  DeflateAgreement g;
  DeflateAnswer r = accept_deflate_answer(ext, context, g);
  if (a) *a = g;
  return r;
}

TEST(PermessageDeflate, ClientChecksTheServersAnswer) {
  EXPECT_EQ(deflate_client_offer(false), kStateless);
  EXPECT_EQ(deflate_client_offer(true), "permessage-deflate; client_max_window_bits");
  DeflateAgreement a;
  EXPECT_EQ(client("", false), DeflateAnswer::kNone);
  EXPECT_EQ(client(kStateless, false, &a), DeflateAnswer::kAccepted);
  EXPECT_FALSE(a.send_context);
  EXPECT_FALSE(a.recv_context);
  EXPECT_EQ(client("permessage-deflate; server_no_context_takeover", false),
            DeflateAnswer::kAccepted);
  // An offered server_no_context_takeover must be accepted as such.
  EXPECT_EQ(client("permessage-deflate", false), DeflateAnswer::kInvalid);
  EXPECT_EQ(client("permessage-deflate", true, &a), DeflateAnswer::kAccepted);
  EXPECT_TRUE(a.send_context);
  EXPECT_TRUE(a.recv_context);
  EXPECT_EQ(client("permessage-deflate; client_max_window_bits=9", true, &a),
            DeflateAnswer::kAccepted);
  EXPECT_EQ(a.send_window_bits, 9);
  // zlib has no raw 256-byte window: a stream cannot keep to 8 bits, so each message is
  // compressed on its own (which every server inflates, whatever it allowed).
  EXPECT_EQ(client("permessage-deflate; client_max_window_bits=8", true, &a),
            DeflateAnswer::kAccepted);
  EXPECT_FALSE(a.send_context);
  EXPECT_TRUE(a.recv_context);
  EXPECT_EQ(a.send_window_bits, 8);
  EXPECT_EQ(client("permessage-deflate; client_no_context_takeover", true, &a),
            DeflateAnswer::kAccepted);
  EXPECT_FALSE(a.send_context);
  // A server may name its own window unasked (RFC 7692 §7.1.2.1, last paragraph): our inflater
  // reads any window up to 15 bits. Python's websockets and Node's ws accept it too.
  for (bool context : {false, true}) {
    std::string ext =
        std::string(context ? "permessage-deflate" : kStateless) + "; server_max_window_bits=10";
    EXPECT_EQ(client(ext, context, &a), DeflateAnswer::kAccepted) << ext;
    EXPECT_EQ(a.recv_context, context) << ext;
    EXPECT_EQ(a.recv_window_bits, 15) << ext;
  }
  // Not offered, invalid, or not alone: the connection fails.
  for (const char* bad :
       {"permessage-deflate; server_no_context_takeover; server_max_window_bits=16",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits",
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; x=1", "x-other",
        "permessage-deflate; server_no_context_takeover, permessage-deflate; "
        "server_no_context_takeover",
        "permessage-deflate;;"})
    EXPECT_EQ(client(bad, false), DeflateAnswer::kInvalid) << bad;
  EXPECT_EQ(client("permessage-deflate; client_max_window_bits", true), DeflateAnswer::kInvalid);
  EXPECT_EQ(client("permessage-deflate; client_max_window_bits=16", true), DeflateAnswer::kInvalid);
}

}  // namespace
}  // namespace wsedge::protocol
