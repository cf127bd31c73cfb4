#pragma once
// The keys tokens are verified with: HMAC secrets, PEM public keys and JWK Sets, each key pinned
// to exactly one algorithm when it is loaded (RFC 8725 §3.1), so a token's `alg` header can
// only select a key, never change how a key is used.
#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsedge::auth {

enum class Alg : std::uint8_t { kHS256, kHS384, kHS512, kES256, kES384, kRS256, kPS256, kEdDSA };
std::string_view alg_name(Alg);                      // "HS256", ..., "EdDSA"
std::optional<Alg> alg_from_name(std::string_view);  // exact, case-sensitive; "none" -> nullopt

// One verification key, pinned to exactly one algorithm.
struct Key {
  std::string kid;  // may be empty
  Alg alg = Alg::kHS256;
  std::string secret;        // HS*: the secret bytes
  EVP_PKEY* pkey = nullptr;  // others: owned
  // Contexts made once, by KeySet::add, and reused for every token: OpenSSL 3 looks an
  // algorithm's implementation up on every one-shot call and context set-up, which cost more
  // than the HMAC itself and half again an ECDSA verify (measured: bench/results/
  // 2026-11-30-auth.md). Being reused, a key verifies on one thread at a time: every core loads
  // its own KeySet. All owned.
  EVP_MAC_CTX* mac = nullptr;        // HS*: HMAC keyed with `secret`
  EVP_MD* md = nullptr;              // ES, RS, PS: the digest the signature covers ...
  EVP_MD_CTX* hash = nullptr;        //   ... computed here for each token ...
  EVP_PKEY_CTX* verifier = nullptr;  //   ... and checked here (padding set for PS256)

  Key() = default;
  Key(Key&& o) noexcept;
  Key& operator=(Key&& o) noexcept;
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
  ~Key();
  void swap(Key& o) noexcept;
};

// What the operator configured.
struct KeySource {
  // HS secret files: (HS256|HS384|HS512, path). The file's bytes are the secret, one trailing
  // newline stripped; refused under 32 bytes for HS256, 48 for HS384, 64 for HS512 (RFC 7518
  // §3.2: a shorter secret is weaker than the hash).
  std::vector<std::pair<Alg, std::string>> secret_files;
  // PEM SubjectPublicKeyInfo, optionally suffixed ";alg=PS256" (RSA keys default to RS256):
  // EC P-256 -> ES256, P-384 -> ES384, Ed25519 -> EdDSA, RSA (>= 2048 bits) -> RS256.
  std::vector<std::string> public_key_files;
  // RFC 7517 JWK Sets: kty RSA (n, e), EC (crv P-256/P-384, x, y), OKP (crv Ed25519, x), oct (k,
  // needs "alg"). "alg" pins the algorithm when present and must agree with the key type; keys
  // whose "use" is not "sig" are skipped; private members are ignored.
  std::vector<std::string> jwks_files;
};

// The shortest secret RFC 7518 §3.2 allows for an HS algorithm (0 for the others).
std::size_t min_secret_size(Alg);

// Strict base64url without padding (RFC 7515 §2): refuses '=', characters outside the
// alphabet, a length of 1 mod 4 and nonzero unused bits in the last character (which would let
// one signature have several encodings). Appends to `out`; false on any of these, with `out`
// as it was.
bool base64url_decode(std::string_view in, std::string& out);

// The kid of a secret or PEM file: its name without directories and without its last extension
// ("keys/2026-11.pem" -> "2026-11").
std::string kid_from_path(std::string_view path);

class KeySet {
 public:
  // Loads everything; throws std::runtime_error("<file>: <what is wrong>") on the first problem,
  // so a bad file never half-loads (the caller keeps its previous set). The message never holds
  // key material.
  static KeySet load(const KeySource& src);
  // Adds one key; throws std::runtime_error when its kid is already taken (a kid must name one
  // key), an HS secret is shorter than min_secret_size, or a public key's type does not agree
  // with its alg.
  void add(Key key);
  // The key for a token: with a kid, the key of that kid; without one, the only key of that
  // algorithm when there is exactly one. nullptr when none, and when the key found is pinned to
  // another algorithm than `alg` (so an HS256 token "signed" with an RSA public key's bytes
  // never verifies).
  const Key* find(std::string_view kid, Alg alg) const;
  std::size_t size() const { return keys_.size(); }
  bool empty() const { return keys_.empty(); }

 private:
  std::vector<Key> keys_;
};

}  // namespace wsedge::auth
