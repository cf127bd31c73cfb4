#include "jwt.hpp"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <array>
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

const EVP_MD* digest(Alg a) {
  switch (a) {
    case Alg::kHS256:
    case Alg::kES256:
    case Alg::kRS256:
    case Alg::kPS256:
      return EVP_sha256();
    case Alg::kHS384:
    case Alg::kES384:
      return EVP_sha384();
    case Alg::kHS512:
      return EVP_sha512();
    case Alg::kEdDSA:
      return nullptr;  // Ed25519 hashes internally: EVP_DigestVerify takes no digest
  }
  return nullptr;
}

bool equal_ci(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

bool check_hmac(const Key& key, std::string_view input, std::string_view sig) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(digest(key.alg), key.secret.data(), static_cast<int>(key.secret.size()),
            reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len))
    return false;
  // Constant time, so the time to refuse does not tell how many leading bytes were right.
  return sig.size() == len && CRYPTO_memcmp(mac, sig.data(), len) == 0;
}

// JWS carries ECDSA signatures as raw r || s of the curve's size (RFC 7518 §3.4); OpenSSL
// takes DER. Writes the DER form into `der`, returning its length (0 when it cannot be built).
std::size_t ecdsa_der(std::string_view raw, std::size_t half, unsigned char* der, std::size_t cap) {
  if (raw.size() != 2 * half) return 0;
  auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(ECDSA_SIG_new(), ECDSA_SIG_free);
  BIGNUM* r = BN_bin2bn(p, static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(p + half, static_cast<int>(half), nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return 0;
  }
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0 || static_cast<std::size_t>(len) > cap) return 0;
  return static_cast<std::size_t>(i2d_ECDSA_SIG(sig.get(), &der));
}

bool check_signature(const Key& key, std::string_view input, std::string_view sig) {
  if (key.alg == Alg::kHS256 || key.alg == Alg::kHS384 || key.alg == Alg::kHS512)
    return check_hmac(key, input, sig);
  unsigned char der[160];  // DER of a P-384 signature is at most 104 bytes
  auto* sig_bytes = reinterpret_cast<const unsigned char*>(sig.data());
  std::size_t sig_len = sig.size();
  if (key.alg == Alg::kES256 || key.alg == Alg::kES384) {
    sig_len = ecdsa_der(sig, key.alg == Alg::kES256 ? 32 : 48, der, sizeof der);
    if (sig_len == 0) return false;
    sig_bytes = der;
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, digest(key.alg), nullptr, key.pkey) != 1)
    return false;
  // PS256 (RFC 7518 §3.5): PSS with MGF1 over SHA-256 and a salt as long as the digest.
  if (key.alg == Alg::kPS256 && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                 EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
                                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1))
    return false;
  return EVP_DigestVerify(ctx.get(), sig_bytes, sig_len,
                          reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
}

// The header's checks, and the key it selects. kNone with `key` set, or the error.
TokenError check_header(std::string_view part, const KeySet& keys, const Key*& key) {
  std::string text;
  json::Value h, v;
  if (!base64url_decode(part, text) || !json::parse(text, h) || h.type != json::Type::kObject)
    return TokenError::kMalformed;
  std::string alg_text, kid, typ;
  if (!h.find("alg", v) || !v.get_string(alg_text)) return TokenError::kUnsupportedAlg;
  std::optional<Alg> alg = alg_from_name(alg_text);
  if (!alg) return TokenError::kUnsupportedAlg;
  // We implement no extension, so one the issuer marks critical must fail (RFC 7515 §4.1.11).
  if (h.find("crit", v)) return TokenError::kMalformed;
  if (h.find("typ", v) &&
      (!v.get_string(typ) || !(equal_ci(typ, "JWT") || equal_ci(typ, "at+jwt"))))
    return TokenError::kMalformed;
  if (h.find("kid", v) && (!v.get_string(kid) || kid.size() > kMaxKid))
    return TokenError::kMalformed;
  key = keys.find(kid, *alg);
  return key ? TokenError::kNone : TokenError::kUnknownKey;
}

// A string array claim (roles, channels): absent is fine; anything else must be an array of at
// most kMaxList strings that each pass `ok`.
template <class Ok>
bool string_list(const json::Value& claims, std::string_view name, Ok&& ok,
                 std::vector<std::string>& out) {
  json::Value list;
  if (!claims.find(name, list)) return true;
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
  json::Value c, v;
  if (!base64url_decode(part, text) || !json::parse(text, c) || c.type != json::Type::kObject)
    return TokenError::kMalformed;
  if (!c.find("sub", v) || !v.get_string(out.sub) || out.sub.empty() || out.sub.size() > kMaxSub ||
      !no_controls(out.sub))
    return TokenError::kBadClaims;
  bool has_exp = c.find("exp", v);
  if (has_exp ? !v.get_int(out.exp) : opts.require_exp) return TokenError::kBadClaims;
  bool has_nbf = c.find("nbf", v);
  if (has_nbf && !v.get_int(out.nbf)) return TokenError::kBadClaims;
  bool has_iat = c.find("iat", v);
  if (has_iat && !v.get_int(out.iat)) return TokenError::kBadClaims;
  if (!string_list(c, "roles", role_ok, out.roles) ||
      !string_list(
          c, "channels",
          [](const std::string& ch) {
            return !ch.empty() && ch.size() <= kMaxChannel && no_controls(ch);
          },
          out.channels))
    return TokenError::kBadClaims;
  if (c.find("info", v)) {
    if (v.raw.size() > kMaxInfo) return TokenError::kBadClaims;
    out.info.assign(v.raw);
  }
  std::string iss;
  bool has_iss = c.find("iss", v);
  if (has_iss && !v.get_string(iss)) return TokenError::kBadClaims;
  json::Value aud;
  bool has_aud = c.find("aud", aud);
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
  if (token.size() > opts.max_token) return TokenError::kTooLarge;
  std::size_t dot1 = token.find('.');
  std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos ||
      dot1 == 0 || dot2 == dot1 + 1)
    return TokenError::kMalformed;
  const Key* key = nullptr;
  if (TokenError e = check_header(token.substr(0, dot1), keys, key); e != TokenError::kNone)
    return e;
  std::string sig;
  if (!base64url_decode(token.substr(dot2 + 1), sig)) return TokenError::kMalformed;
  // The signing input is the two encoded parts as sent (RFC 7515 §5.2 step 8).
  if (!check_signature(*key, token.substr(0, dot2), sig)) {
    // OpenSSL queues why a signature failed on this thread's error queue; left there, it would
    // make the next SSL_get_error on this core's TLS connections report a failure of their own.
    ERR_clear_error();
    return TokenError::kBadSignature;
  }
  out = Claims{};
  return check_claims(token.substr(dot1 + 1, dot2 - dot1 - 1), opts, now, out);
}

}  // namespace wsedge::auth
