#pragma once
// Verification of compact JWS tokens (RFC 7515, RFC 7519) against a KeySet: pure code over the
// token's bytes, no I/O, no clock (the caller passes `now`). The signature is checked before
// anything in the payload is read, and only with the algorithm the key is pinned to.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keys.hpp"

namespace wsedge::auth {

struct VerifyOptions {
  std::vector<std::string> audiences;  // when not empty, `aud` (string or array) must hold one
  std::string issuer;                  // when not empty, `iss` must equal it
  std::uint32_t leeway_s = 30;         // clock skew allowed on exp/nbf/iat
  std::size_t max_token = 8192;        // longer tokens are refused before any decoding
  bool require_exp = true;             // a token without exp is refused (kBadClaims)
};

struct Claims {
  std::string sub;       // required, non-empty string, at most 256 bytes
  std::int64_t exp = 0;  // 0: none (only when !require_exp)
  std::int64_t nbf = 0, iat = 0;
  std::vector<std::string> roles;     // at most 64, each 1-128 bytes of [A-Za-z0-9_.:-]
  std::vector<std::string> channels;  // at most 64, each 1-255 bytes, no control characters
  std::string info;                   // the raw JSON text of `info` (at most 4096 bytes)
  // The algorithm of the key the token named, once one was found (whatever the outcome after
  // it: a bad signature or an expired token has one too); for the metrics by algorithm.
  std::optional<Alg> alg;
};

enum class TokenError : std::uint8_t {
  kNone,
  kMissing,  // no token given; used by callers
  kTooLarge,
  kMalformed,       // not three base64url parts, bad JSON, bad base64, typ not JWT/absent, crit
  kUnsupportedAlg,  // alg none, unknown, absent or not a string
  kUnknownKey,      // no key for kid/alg
  kBadSignature,
  kExpired,
  kNotYetValid,     // nbf in the future
  kIssuedInFuture,  // iat > now + leeway
  kBadAudience,
  kBadIssuer,
  kBadClaims,  // sub missing/bad, exp missing, wrong claim types
  kCount
};

// A short stable reason for logs, the 401 body and WWW-Authenticate's error_description: never
// key material or token bytes ("token expired", "bad signature").
std::string_view reason(TokenError);
// A metrics-friendly name ("expired", "bad_signature").
std::string_view metric_name(TokenError);

// Verifies `token` (compact JWS: three base64url parts, no padding) at time `now` (seconds since
// 1970), filling `out` when it returns kNone (and leaving it partly filled otherwise). Allocates
// only into `out` and small temporaries.
TokenError verify(std::string_view token, const KeySet& keys, const VerifyOptions& opts,
                  std::int64_t now, Claims& out);

}  // namespace wsedge::auth
