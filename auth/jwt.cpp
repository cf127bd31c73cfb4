#include "jwt.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "json.hpp"

namespace wsedge::auth {
namespace {

struct ErrorNames {
  std::string_view reason, metric;
};
constexpr std::array<ErrorNames, static_cast<std::size_t>(TokenError::kCount)> kErrorNames = {{
    {"ok", "ok"},
    {"token missing", "missing"},
    {"token too large", "too_large"},
    {"malformed token", "malformed"},
    {"unsupported algorithm", "unsupported_alg"},
    {"unknown key", "unknown_key"},
    {"bad signature", "bad_signature"},
    {"token expired", "expired"},
    {"token not yet valid", "not_yet_valid"},
    {"token issued in the future", "issued_in_future"},
    {"audience not accepted", "bad_audience"},
    {"issuer not accepted", "bad_issuer"},
    {"bad claims", "bad_claims"},
}};

constexpr std::size_t kMaxKid = 128, kMaxSub = 256, kMaxList = 64, kMaxRole = 128,
                      kMaxChannel = 255, kMaxInfo = 4096;

bool equal_ci(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

bool check_hmac(const Key& key, std::string_view input, std::string_view sig) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  // A null key re-initialises the context with the key it holds: no lookup, no allocation.
  if (EVP_MAC_init(key.mac, nullptr, 0, nullptr) != 1 ||
      EVP_MAC_update(key.mac, reinterpret_cast<const unsigned char*>(input.data()), input.size()) !=
          1 ||
      EVP_MAC_final(key.mac, mac, &len, sizeof mac) != 1)
    return false;
  // Constant time, so the time to refuse does not tell how many leading bytes were right.
  return sig.size() == len && CRYPTO_memcmp(mac, sig.data(), len) == 0;
}

// One DER INTEGER of an unsigned big-endian number: leading zeros dropped, a zero byte put back
// when the top bit is set (DER integers are signed).
std::size_t der_integer(const unsigned char* p, std::size_t n, unsigned char* out) {
  while (n > 1 && *p == 0) {
    ++p;
    --n;
  }
  bool pad = *p & 0x80;
  out[0] = 0x02;
  out[1] = static_cast<unsigned char>(n + pad);
  out[2] = 0;
  std::memcpy(out + 2 + pad, p, n);
  return 2 + pad + n;
}

// JWS carries ECDSA signatures as raw r || s of the curve's size (RFC 7518 §3.4); OpenSSL
// takes DER: SEQUENCE { INTEGER r, INTEGER s }. For P-256 and P-384 the content stays under 128
// bytes, so every length is one byte. Returns the DER's length (0 for a raw one of the wrong size).
std::size_t ecdsa_der(std::string_view raw, std::size_t half, unsigned char* der) {
  if (raw.size() != 2 * half) return 0;
  auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  std::size_t n = der_integer(p, half, der + 2);
  n += der_integer(p + half, half, der + 2 + n);
  der[0] = 0x30;
  der[1] = static_cast<unsigned char>(n);
  return 2 + n;
}

bool check_signature(const Key& key, std::string_view input, std::string_view sig) {
  auto* in = reinterpret_cast<const unsigned char*>(input.data());
  if (key.alg == Alg::kHS256 || key.alg == Alg::kHS384 || key.alg == Alg::kHS512)
    return check_hmac(key, input, sig);
  auto* sig_bytes = reinterpret_cast<const unsigned char*>(sig.data());
  if (key.alg == Alg::kEdDSA) {
    // Ed25519 hashes inside a one-shot verify, which a context serves once.
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.pkey) == 1 &&
           EVP_DigestVerify(ctx.get(), sig_bytes, sig.size(), in, input.size()) == 1;
  }
  unsigned char der[2 + 2 * (3 + 48)];  // the DER of a P-384 signature at its longest
  std::size_t sig_len = sig.size();
  if (key.alg == Alg::kES256 || key.alg == Alg::kES384) {
    sig_len = ecdsa_der(sig, key.alg == Alg::kES256 ? 32 : 48, der);
    if (sig_len == 0) return false;
    sig_bytes = der;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  return EVP_DigestInit_ex2(key.hash, key.md, nullptr) == 1 &&
         EVP_DigestUpdate(key.hash, in, input.size()) == 1 &&
         EVP_DigestFinal_ex(key.hash, digest, &digest_len) == 1 &&
         EVP_PKEY_verify(key.verifier, sig_bytes, sig_len, digest, digest_len) == 1;
}

// The members a check reads, taken in one pass over the object: find() walks it once per name,
// and nine walks of the claims were a quarter of an HS256 token's cost at the upgrade. parse()
// refused duplicate names, so the member seen is the only one of its name.
struct Member {
  std::string_view name;
  json::Value value;
  bool found = false;
};

template <std::size_t N>
void pick(const json::Value& object, std::array<Member, N>& members) {
  object.for_each_member([&](std::string_view name, const json::Value& v) {
    for (Member& m : members) {
      if (m.name == name) {
        m.value = v;
        m.found = true;
        return;
      }
    }
  });
}

// The header's checks, and the key it selects. kNone with `key` set, or the error.
TokenError check_header(std::string_view part, const KeySet& keys, const Key*& key) {
  std::string text;
  json::Value h;
  if (!base64url_decode(part, text) || !json::parse(text, h) || h.type != json::Type::kObject)
    return TokenError::kMalformed;
  enum { kAlg, kCrit, kTyp, kKid };
  std::array<Member, 4> m{{{"alg"}, {"crit"}, {"typ"}, {"kid"}}};
  pick(h, m);
  std::string alg_text, kid, typ;
  if (!m[kAlg].found || !m[kAlg].value.get_string(alg_text)) return TokenError::kUnsupportedAlg;
  std::optional<Alg> alg = alg_from_name(alg_text);
  if (!alg) return TokenError::kUnsupportedAlg;
  // We implement no extension, so one the issuer marks critical must fail (RFC 7515 §4.1.11).
  if (m[kCrit].found) return TokenError::kMalformed;
  if (m[kTyp].found &&
      (!m[kTyp].value.get_string(typ) || !(equal_ci(typ, "JWT") || equal_ci(typ, "at+jwt"))))
    return TokenError::kMalformed;
  if (m[kKid].found && (!m[kKid].value.get_string(kid) || kid.size() > kMaxKid))
    return TokenError::kMalformed;
  key = keys.find(kid, *alg);
  return key ? TokenError::kNone : TokenError::kUnknownKey;
}

// A string array claim (roles, channels): absent is fine; anything else must be an array of at
// most kMaxList strings that each pass `ok`.
template <class Ok>
bool string_list(const Member& member, Ok&& ok, std::vector<std::string>& out) {
  if (!member.found) return true;
  const json::Value& list = member.value;
  if (list.type != json::Type::kArray || list.size() > kMaxList) return false;
  bool good = true;
  list.for_each_element([&](const json::Value& e) {
    std::string s;
    good = good && e.get_string(s) && ok(s);
    if (good) out.push_back(std::move(s));
  });
  return good;
}

// No control characters: sub and channels reach logs and backends, and an escaped "\n" in a
// signed token must not forge a log line.
bool no_controls(const std::string& s) {
  return std::none_of(s.begin(), s.end(),
                      [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; });
}

bool role_ok(const std::string& r) {
  return !r.empty() && r.size() <= kMaxRole && std::all_of(r.begin(), r.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
  });
}

// The payload's claims into `out`, then the checks on time, issuer and audience.
TokenError check_claims(std::string_view part, const VerifyOptions& opts, std::int64_t now,
                        Claims& out) {
  std::string text;
  json::Value c;
  if (!base64url_decode(part, text) || !json::parse(text, c) || c.type != json::Type::kObject)
    return TokenError::kMalformed;
  enum { kSub, kExp, kNbf, kIat, kRoles, kChannels, kInfo, kIss, kAud };
  std::array<Member, 9> m{
      {{"sub"}, {"exp"}, {"nbf"}, {"iat"}, {"roles"}, {"channels"}, {"info"}, {"iss"}, {"aud"}}};
  pick(c, m);
  if (!m[kSub].found || !m[kSub].value.get_string(out.sub) || out.sub.empty() ||
      out.sub.size() > kMaxSub || !no_controls(out.sub))
    return TokenError::kBadClaims;
  bool has_exp = m[kExp].found;
  if (has_exp ? !m[kExp].value.get_int(out.exp) : opts.require_exp) return TokenError::kBadClaims;
  bool has_nbf = m[kNbf].found;
  if (has_nbf && !m[kNbf].value.get_int(out.nbf)) return TokenError::kBadClaims;
  bool has_iat = m[kIat].found;
  if (has_iat && !m[kIat].value.get_int(out.iat)) return TokenError::kBadClaims;
  if (!string_list(m[kRoles], role_ok, out.roles) ||
      !string_list(
          m[kChannels],
          [](const std::string& ch) {
            return !ch.empty() && ch.size() <= kMaxChannel && no_controls(ch);
          },
          out.channels))
    return TokenError::kBadClaims;
  if (m[kInfo].found) {
    if (m[kInfo].value.raw.size() > kMaxInfo) return TokenError::kBadClaims;
    out.info.assign(m[kInfo].value.raw);
  }
  std::string iss;
  bool has_iss = m[kIss].found;
  if (has_iss && !m[kIss].value.get_string(iss)) return TokenError::kBadClaims;
  const json::Value& aud = m[kAud].value;
  bool has_aud = m[kAud].found;
  bool aud_ok = opts.audiences.empty();
  auto accept = [&](const json::Value& a) {
    std::string s;
    if (!a.get_string(s)) return false;
    aud_ok = aud_ok ||
             std::find(opts.audiences.begin(), opts.audiences.end(), s) != opts.audiences.end();
    return true;
  };
  if (has_aud) {
    bool typed = true;
    if (aud.type == json::Type::kArray) {
      aud.for_each_element([&](const json::Value& a) { typed = accept(a) && typed; });
    } else {
      typed = accept(aud);
    }
    if (!typed) return TokenError::kBadClaims;
  }

  // now is clamped so now +- leeway cannot overflow, whatever a caller passes.
  constexpr std::int64_t kLimit = std::int64_t{1} << 62;
  now = std::clamp(now, -kLimit, kLimit);
  const std::int64_t leeway = opts.leeway_s;
  if (has_exp && out.exp < now - leeway) return TokenError::kExpired;
  if (has_nbf && out.nbf > now + leeway) return TokenError::kNotYetValid;
  if (has_iat && out.iat > now + leeway) return TokenError::kIssuedInFuture;
  if (!opts.issuer.empty() && (!has_iss || iss != opts.issuer)) return TokenError::kBadIssuer;
  if (!aud_ok) return TokenError::kBadAudience;
  return TokenError::kNone;
}

}  // namespace

std::string_view reason(TokenError e) {
  auto i = static_cast<std::size_t>(e);
  return i < kErrorNames.size() ? kErrorNames[i].reason : "unknown";
}

std::string_view metric_name(TokenError e) {
  auto i = static_cast<std::size_t>(e);
  return i < kErrorNames.size() ? kErrorNames[i].metric : "unknown";
}

TokenError verify(std::string_view token, const KeySet& keys, const VerifyOptions& opts,
                  std::int64_t now, Claims& out) {
  out = Claims{};
  if (token.size() > opts.max_token) return TokenError::kTooLarge;
  std::size_t dot1 = token.find('.');
  std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos ||
      dot1 == 0 || dot2 == dot1 + 1)
    return TokenError::kMalformed;
  const Key* key = nullptr;
  if (TokenError e = check_header(token.substr(0, dot1), keys, key); e != TokenError::kNone)
    return e;
  out.alg = key->alg;
  std::string sig;
  if (!base64url_decode(token.substr(dot2 + 1), sig)) return TokenError::kMalformed;
  // The signing input is the two encoded parts as sent (RFC 7515 §5.2 step 8).
  if (!check_signature(*key, token.substr(0, dot2), sig)) {
    // OpenSSL queues why a signature failed on this thread's error queue; left there, it would
    // make the next SSL_get_error on this core's TLS connections report a failure of their own.
    ERR_clear_error();
    return TokenError::kBadSignature;
  }
  return check_claims(token.substr(dot1 + 1, dot2 - dot1 - 1), opts, now, out);
}

}  // namespace wsedge::auth
