// Fuzzes token verification and the JSON reader under it (tokens come from any client, before
// authentication). The first input byte picks the mode, the rest is the data:
//   0: the data is a whole token, verified against a KeySet holding one HS256 secret and one
//      ES256 key (made once); without the key nothing gets past the signature.
//   1: the data is a claims payload that the target signs with the HS256 secret, so the claim
//      checks behind the signature are reached: a token that verifies must satisfy every limit.
//   2 and others: the data is JSON for the reader alone: a document that parses is walked (find,
//      iteration, string and integer extraction), and every value it yields lies inside it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/json.hpp"
#include "auth/jwt.hpp"
#include "fuzz_check.hpp"
#include "tests/unit/auth_test_keys.hpp"

using namespace wsedge::auth;
using wsedge::fuzz::check;
using wsedge::fuzz::inside;

namespace {

const std::string kSecret(32, 'f');
constexpr std::int64_t kNow = 1800000000;

const KeySet& key_set() {
  static const KeySet set = [] {
    KeySet s;
    Key hs;
    hs.kid = "hs";
    hs.alg = Alg::kHS256;
    hs.secret = kSecret;
    s.add(std::move(hs));
    Key es;
    es.kid = "es";
    es.alg = Alg::kES256;
    es.pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    s.add(std::move(es));
    return s;
  }();
  return set;
}

void check_claims(const Claims& c) {
  check(!c.sub.empty() && c.sub.size() <= 256);
  check(c.roles.size() <= 64 && c.channels.size() <= 64 && c.info.size() <= 4096);
  for (const std::string& r : c.roles) check(!r.empty() && r.size() <= 128);
  for (const std::string& ch : c.channels) check(!ch.empty() && ch.size() <= 255);
  check(c.exp >= kNow - 30);
}

// Walks a parsed value: everything it yields lies inside `text`, and extraction never crashes.
void walk(const json::Value& v, std::string_view text, int depth) {
  check(inside(v.raw, text.data(), text.data() + text.size()) && !v.raw.empty());
  check(depth <= json::kMaxDepth + 1);
  std::string s;
  std::int64_t i;
  bool b;
  check(v.get_string(s) == (v.type == json::Type::kString));
  check(!v.get_int(i) || v.type == json::Type::kNumber);
  check(v.get_bool(b) == (v.type == json::Type::kBool));
  json::Value m;
  if (v.type == json::Type::kObject) {
    for (const char* name : {"alg", "kid", "sub", "keys", ""})
      if (v.find(name, m)) walk(m, text, depth + 1);
  }
  std::size_t n = 0;
  v.for_each_element([&](const json::Value& e) {
    ++n;
    walk(e, text, depth + 1);
  });
  check(n == v.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  Claims c;
  VerifyOptions opts;
  opts.audiences = {"wsedge"};
  if (data[0] == 0) {
    TokenError e = verify(in, key_set(), opts, kNow, c);
    check(e != TokenError::kNone);  // no valid signature can be guessed
    check(!reason(e).empty() && !metric_name(e).empty());
  } else if (data[0] == 1) {
    std::string token = wsedge::test::make_token(Alg::kHS256, nullptr, kSecret,
                                                 R"({"alg":"HS256","kid":"hs"})", in);
    TokenError e = verify(token, key_set(), opts, kNow, c);
    if (e == TokenError::kNone) check_claims(c);
  } else {
    json::Value v;
    if (json::parse(in, v)) walk(v, in, 0);
  }
  return 0;
}
