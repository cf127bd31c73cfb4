#include "keys.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <array>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <utility>

#include "json.hpp"

namespace wsedge::auth {
namespace {

constexpr std::array<std::string_view, 8> kAlgNames = {"HS256", "HS384", "HS512", "ES256",
                                                       "ES384", "RS256", "PS256", "EdDSA"};

template <auto Fn>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;

[[noreturn]] void fail(std::string_view file, std::string_view what) {
  // A failed OpenSSL call leaves errors queued on this thread, where a later SSL_get_error on a
  // TLS connection would find them and fail that connection instead.
  ERR_clear_error();
  throw std::runtime_error(std::string(file).append(": ").append(what));
}

bool is_hs(Alg a) {
  return a == Alg::kHS256 || a == Alg::kHS384 || a == Alg::kHS512;
}

// Operator files are small; a larger one is a wrong path (a log, a device), not a key.
constexpr std::size_t kMaxKeyFile = 1 << 20;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::string data;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    data.append(buf, static_cast<std::size_t>(in.gcount()));
    if (data.size() > kMaxKeyFile) fail(path, "larger than 1 MiB");
  }
  if (in.bad()) fail(path, "read error");
  return data;
}

// The algorithm a public key is pinned to: its type's, or `pinned` when that agrees with the
// type (only RSA has a choice: RS256 or PS256). nullptr, or what is wrong.
const char* pkey_alg(EVP_PKEY* k, std::optional<Alg> pinned, Alg& out) {
  Alg natural;
  int id = EVP_PKEY_get_base_id(k);
  if (id == EVP_PKEY_RSA) {
    if (EVP_PKEY_get_bits(k) < 2048) return "RSA key under 2048 bits";
    natural = Alg::kRS256;
  } else if (id == EVP_PKEY_EC) {
    char group[64];
    std::size_t len = 0;
    if (EVP_PKEY_get_group_name(k, group, sizeof group, &len) != 1)
      return "EC key without a named curve";
    std::string_view name(group, len);
    if (name == "prime256v1") {
      natural = Alg::kES256;
    } else if (name == "secp384r1") {
      natural = Alg::kES384;
    } else {
      return "unsupported EC curve (P-256 and P-384 are)";
    }
  } else if (id == EVP_PKEY_ED25519) {
    natural = Alg::kEdDSA;
  } else {
    return "unsupported key type";
  }
  if (pinned && *pinned != natural && !(natural == Alg::kRS256 && *pinned == Alg::kPS256))
    return "alg does not match the key type";
  out = pinned.value_or(natural);
  return nullptr;
}

Key secret_key(std::string kid, Alg alg, std::string secret) {
  Key k;
  k.kid = std::move(kid);
  k.alg = alg;
  k.secret = std::move(secret);
  return k;
}

Key load_pem(std::string_view spec) {
  std::optional<Alg> pinned;
  std::string_view path = spec;
  if (std::size_t semi = spec.rfind(";alg="); semi != std::string_view::npos) {
    path = spec.substr(0, semi);
    pinned = alg_from_name(spec.substr(semi + 5));
    if (!pinned || is_hs(*pinned)) fail(path, "unsupported ;alg= suffix");
  }
  std::string file(path);
  std::string pem = read_file(file);
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr pkey(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!pkey) fail(file, "not a PEM public key (SubjectPublicKeyInfo)");
  Key k;
  if (const char* err = pkey_alg(pkey.get(), pinned, k.alg)) fail(file, err);
  k.kid = kid_from_path(path);
  k.pkey = pkey.release();
  return k;
}

// EVP_PKEY_fromdata over the parameters `push` adds, for key type `type`.
template <class Push>
PkeyPtr pkey_from(const char* type, Push&& push) {
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || !push(bld.get())) return nullptr;
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
    return nullptr;
  return PkeyPtr(raw);
}

// One JWK of a set: a key, or nothing when its "use" is not "sig". `where` is "keys[i]: ".
std::optional<Key> load_jwk(const json::Value& jwk, const std::string& where,
                            const std::string& file) {
  auto bad = [&](std::string_view what) { fail(file, std::string(where).append(what)); };
  if (jwk.type != json::Type::kObject) bad("not an object");
  json::Value v;
  auto text = [&](std::string_view name, bool required) {
    std::string s;
    if (!jwk.find(name, v)) {
      if (required) bad(std::string("no \"").append(name).append("\""));
    } else if (!v.get_string(s)) {
      bad(std::string("\"").append(name).append("\" is not a string"));
    }
    return s;
  };
  auto bytes = [&](std::string_view name) {
    std::string out;
    if (!base64url_decode(text(name, true), out))
      bad(std::string("\"").append(name).append("\" is not base64url"));
    return out;
  };
  if (jwk.find("use", v) && text("use", true) != "sig") return std::nullopt;
  std::string kty = text("kty", true), alg_text = text("alg", false);
  std::optional<Alg> pinned;
  if (jwk.find("alg", v)) {
    pinned = alg_from_name(alg_text);
    if (!pinned) bad("unsupported alg");
  }
  Key key;
  key.kid = text("kid", false);
  if (kty == "oct") {
    if (!pinned || !is_hs(*pinned)) bad("oct key needs an HS256/HS384/HS512 alg");
    return secret_key(std::move(key.kid), *pinned, bytes("k"));
  }
  if (pinned && is_hs(*pinned)) bad("alg does not match the key type");
  PkeyPtr pkey;
  if (kty == "RSA") {
    std::string n = bytes("n"), e = bytes("e");
    auto bn = [](const std::string& b) {
      return BnPtr(BN_bin2bn(reinterpret_cast<const unsigned char*>(b.data()),
                             static_cast<int>(b.size()), nullptr));
    };
    BnPtr bn_n = bn(n), bn_e = bn(e);
    pkey = pkey_from("RSA", [&](OSSL_PARAM_BLD* b) {
      return bn_n && bn_e && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn_n.get()) &&
             OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, bn_e.get());
    });
    if (!pkey) bad("bad RSA key");
  } else if (kty == "EC") {
    std::string crv = text("crv", true);
    std::size_t size = crv == "P-256" ? 32 : crv == "P-384" ? 48 : 0;
    if (size == 0) bad("unsupported crv (P-256 and P-384 are)");
    // An uncompressed point: 0x04 || x || y, each coordinate of exactly the curve's size.
    std::string point = std::string(1, '\x04').append(bytes("x")).append(bytes("y"));
    if (point.size() != 1 + 2 * size) bad("x or y of the wrong length");
    const char* group = size == 32 ? "prime256v1" : "secp384r1";
    pkey = pkey_from("EC", [&](OSSL_PARAM_BLD* b) {
      return OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
             OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                              point.size());
    });
    // A point off the curve would be an invalid-curve attack's foothold: check it explicitly.
    PkeyCtxPtr check(pkey ? EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr) : nullptr);
    if (!check || EVP_PKEY_public_check(check.get()) != 1) bad("EC point not on the curve");
  } else if (kty == "OKP") {
    if (text("crv", true) != "Ed25519") bad("unsupported crv (Ed25519 is)");
    std::string x = bytes("x");
    if (x.size() != 32) bad("x of the wrong length");
    pkey.reset(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                           reinterpret_cast<const unsigned char*>(x.data()), 32));
    if (!pkey) bad("bad Ed25519 key");
  } else {
    bad("unsupported kty");
  }
  if (const char* err = pkey_alg(pkey.get(), pinned, key.alg)) bad(err);
  key.pkey = pkey.release();
  return key;
}

}  // namespace

std::string_view alg_name(Alg a) {
  return kAlgNames[static_cast<std::size_t>(a)];
}

std::optional<Alg> alg_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kAlgNames.size(); ++i)
    if (kAlgNames[i] == name) return static_cast<Alg>(i);
  return std::nullopt;
}

std::size_t min_secret_size(Alg a) {
  switch (a) {
    case Alg::kHS256:
      return 32;
    case Alg::kHS384:
      return 48;
    case Alg::kHS512:
      return 64;
    default:
      return 0;
  }
}

Key::Key(Key&& o) noexcept {
  swap(o);
}

Key& Key::operator=(Key&& o) noexcept {
  Key taken(std::move(o));
  swap(taken);  // what this held goes with `taken`
  return *this;
}

void Key::swap(Key& o) noexcept {
  std::swap(kid, o.kid);
  std::swap(alg, o.alg);
  std::swap(secret, o.secret);
  std::swap(pkey, o.pkey);
  std::swap(mac, o.mac);
  std::swap(md, o.md);
  std::swap(hash, o.hash);
  std::swap(verifier, o.verifier);
}

Key::~Key() {
  EVP_PKEY_CTX_free(verifier);
  EVP_MD_CTX_free(hash);
  EVP_MD_free(md);
  EVP_MAC_CTX_free(mac);
  EVP_PKEY_free(pkey);
}

namespace {

const char* digest_name(Alg a) {
  switch (a) {
    case Alg::kHS384:
    case Alg::kES384:
      return "SHA384";
    case Alg::kHS512:
      return "SHA512";
    default:
      return "SHA256";
  }
}

// The contexts Key describes; throws when OpenSSL cannot make them.
void prepare(Key& k) {
  bool ok = false;
  if (is_hs(k.alg)) {
    EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    k.mac = hmac ? EVP_MAC_CTX_new(hmac) : nullptr;
    EVP_MAC_free(hmac);  // the context holds its own reference
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(
                               OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name(k.alg)), 0),
                           OSSL_PARAM_construct_end()};
    ok = k.mac && EVP_MAC_init(k.mac, reinterpret_cast<const unsigned char*>(k.secret.data()),
                               k.secret.size(), params) == 1;
  } else if (k.alg == Alg::kEdDSA) {
    ok = true;  // Ed25519 hashes inside its one-shot verify: nothing to keep between tokens
  } else {
    k.md = EVP_MD_fetch(nullptr, digest_name(k.alg), nullptr);
    k.hash = EVP_MD_CTX_new();
    k.verifier = EVP_PKEY_CTX_new_from_pkey(nullptr, k.pkey, nullptr);
    ok = k.md && k.hash && k.verifier && EVP_PKEY_verify_init(k.verifier) == 1 &&
         EVP_PKEY_CTX_set_signature_md(k.verifier, k.md) == 1;
    // PS256 (RFC 7518 §3.5): PSS with MGF1 over SHA-256 and a salt as long as the digest.
    if (ok && k.alg == Alg::kPS256)
      ok = EVP_PKEY_CTX_set_rsa_padding(k.verifier, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(k.verifier, k.md) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(k.verifier, 32) == 1;
  }
  if (!ok) {
    ERR_clear_error();
    throw std::runtime_error(std::string("OpenSSL cannot verify ").append(alg_name(k.alg)));
  }
}

}  // namespace

namespace {
// Each byte's 6-bit value in base64url, or 0xFF: one load per character instead of five range
// tests (a token is decoded three times per upgrade).
constexpr std::array<std::uint8_t, 256> kBase64Url = [] {
  std::array<std::uint8_t, 256> t{};
  t.fill(0xFF);
  for (int i = 0; i < 26; ++i) {
    t['A' + i] = static_cast<std::uint8_t>(i);
    t['a' + i] = static_cast<std::uint8_t>(26 + i);
  }
  for (int i = 0; i < 10; ++i) t['0' + i] = static_cast<std::uint8_t>(52 + i);
  t['-'] = 62;
  t['_'] = 63;
  return t;
}();
}  // namespace

bool base64url_decode(std::string_view in, std::string& out) {
  if (in.size() % 4 == 1) return false;
  std::size_t at = out.size();
  out.resize(at + in.size() / 4 * 3 + (in.size() % 4 == 0 ? 0 : in.size() % 4 - 1));
  char* o = out.data() + at;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    std::uint8_t v = kBase64Url[static_cast<unsigned char>(c)];
    if (v == 0xFF) {
      out.resize(at);
      return false;
    }
    acc = (acc << 6 | v) & 0xFFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *o++ = static_cast<char>(acc >> bits & 0xFF);
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) {  // the unused low bits of the last character
    out.resize(at);
    return false;
  }
  return true;
}

std::string kid_from_path(std::string_view path) {
  if (std::size_t slash = path.rfind('/'); slash != std::string_view::npos)
    path.remove_prefix(slash + 1);
  if (std::size_t dot = path.rfind('.'); dot != std::string_view::npos && dot > 0)
    path = path.substr(0, dot);
  return std::string(path);
}

void KeySet::add(Key key) {
  if (is_hs(key.alg)) {
    if (key.secret.size() < min_secret_size(key.alg))
      throw std::runtime_error(std::string("secret shorter than ")
                                   .append(std::to_string(min_secret_size(key.alg)))
                                   .append(" bytes for ")
                                   .append(alg_name(key.alg)));
  } else {
    Alg agreed;
    if (key.pkey == nullptr) throw std::runtime_error("no public key");
    if (const char* err = pkey_alg(key.pkey, key.alg, agreed)) throw std::runtime_error(err);
  }
  for (const Key& k : keys_)
    if (!key.kid.empty() && k.kid == key.kid)
      throw std::runtime_error(std::string("duplicate kid \"").append(key.kid).append("\""));
  prepare(key);
  keys_.push_back(std::move(key));
}

KeySet KeySet::load(const KeySource& src) {
  KeySet set;
  auto put = [&](std::string_view file, std::string_view where, Key k) {
    try {
      set.add(std::move(k));
    } catch (const std::runtime_error& e) {
      fail(file, std::string(where).append(e.what()));
    }
  };
  for (const auto& [alg, path] : src.secret_files) {
    if (!is_hs(alg)) fail(path, "a secret file needs HS256, HS384 or HS512");
    std::string secret = read_file(path);
    if (!secret.empty() && secret.back() == '\n') secret.pop_back();
    put(path, "", secret_key(kid_from_path(path), alg, std::move(secret)));
  }
  for (const std::string& spec : src.public_key_files) {
    put(spec, "", load_pem(spec));
  }
  for (const std::string& path : src.jwks_files) {
    std::string text = read_file(path);
    json::Value doc, keys;
    if (!json::parse(text, doc)) fail(path, "not valid JSON");
    if (!doc.find("keys", keys) || keys.type != json::Type::kArray) fail(path, "no \"keys\" array");
    std::size_t i = 0;
    keys.for_each_element([&](const json::Value& jwk) {
      std::string where = std::string("keys[").append(std::to_string(i++)).append("]: ");
      if (std::optional<Key> k = load_jwk(jwk, where, path)) put(path, where, std::move(*k));
    });
  }
  return set;
}

const Key* KeySet::find(std::string_view kid, Alg alg) const {
  const Key* found = nullptr;
  for (const Key& k : keys_) {
    if (!kid.empty()) {
      if (k.kid == kid) {
        found = &k;
        break;
      }
    } else if (k.alg == alg) {
      if (found) return nullptr;  // several keys of that algorithm: the token must name one
      found = &k;
    }
  }
  return found && found->alg == alg ? found : nullptr;
}

}  // namespace wsedge::auth
