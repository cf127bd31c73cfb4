#pragma once
// Test helpers for auth/: keys made with OpenSSL at test time, written as PEM or JWK Sets into a
// temporary directory, and tokens signed here (an ES signature converted from DER to the raw
// r || s JWS carries).
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "auth/keys.hpp"

namespace wsedge::test {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/wsedge-auth-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  // Writes `data` to <dir>/<name> and returns that path.
  std::string write(const std::string& name, std::string_view data) const {
    std::string p = path + "/" + name;
    std::ofstream(p, std::ios::binary) << data;
    return p;
  }
};

// An owned EVP_PKEY, private and public halves.
struct TestKey {
  EVP_PKEY* pkey = nullptr;
  explicit TestKey(EVP_PKEY* k) : pkey(k) {
    if (!k) throw std::runtime_error("keygen");
  }
  TestKey(const TestKey&) = delete;
  TestKey& operator=(const TestKey&) = delete;
  ~TestKey() { EVP_PKEY_free(pkey); }

  std::string public_pem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, pkey);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
  }
};

inline TestKey ec_key(const char* curve) {
  return TestKey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
}
inline TestKey rsa_key(std::size_t bits) {
  return TestKey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
}
inline TestKey ed25519_key() {
  return TestKey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
}

inline std::string b64url(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = acc << 8 | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[acc >> bits & 63];
    }
  }
  if (bits > 0) out += kAlphabet[acc << (6 - bits) & 63];
  return out;
}

inline std::string bn_bytes(const BIGNUM* bn, int width = 0) {
  std::string out(static_cast<std::size_t>(width ? width : BN_num_bytes(bn)), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  return out;
}

// The signature of `input` under `alg` with the private key (or the HMAC secret).
inline std::string sign(auth::Alg alg, const TestKey* key, std::string_view secret,
                        std::string_view input) {
  using auth::Alg;
  const EVP_MD* md = alg == Alg::kHS384 || alg == Alg::kES384 ? EVP_sha384()
                     : alg == Alg::kHS512                     ? EVP_sha512()
                     : alg == Alg::kEdDSA                     ? nullptr
                                                              : EVP_sha256();
  if (alg == Alg::kHS256 || alg == Alg::kHS384 || alg == Alg::kHS512) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(md, secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    return std::string(reinterpret_cast<char*>(mac), len);
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  EVP_DigestSignInit(ctx, &pctx, md, nullptr, key->pkey);
  if (alg == Alg::kPS256) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
  }
  std::size_t len = 0;
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  if (alg == Alg::kES256 || alg == Alg::kES384) {
    int half = alg == Alg::kES256 ? 32 : 48;
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    sig = bn_bytes(ECDSA_SIG_get0_r(es), half) + bn_bytes(ECDSA_SIG_get0_s(es), half);
    ECDSA_SIG_free(es);
  }
  return sig;
}

// header.payload.signature from the JSON texts of header and payload.
inline std::string make_token(auth::Alg alg, const TestKey* key, std::string_view secret,
                              std::string_view header, std::string_view payload) {
  std::string input = b64url(header) + "." + b64url(payload);
  return input + "." + b64url(sign(alg, key, secret, input));
}

// The public JWK members of a key (without braces): kty and its parameters.
inline std::string jwk_members(const TestKey& k) {
  int id = EVP_PKEY_get_base_id(k.pkey);
  if (id == EVP_PKEY_RSA) {
    BIGNUM *n = nullptr, *e = nullptr;
    EVP_PKEY_get_bn_param(k.pkey, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(k.pkey, OSSL_PKEY_PARAM_RSA_E, &e);
    std::string out =
        R"("kty":"RSA","n":")" + b64url(bn_bytes(n)) + R"(","e":")" + b64url(bn_bytes(e)) + "\"";
    BN_free(n);
    BN_free(e);
    return out;
  }
  if (id == EVP_PKEY_EC) {
    unsigned char pub[200];
    std::size_t len = 0;
    EVP_PKEY_get_octet_string_param(k.pkey, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &len);
    std::size_t half = (len - 1) / 2;
    std::string_view p(reinterpret_cast<char*>(pub) + 1, len - 1);
    return std::string(R"("kty":"EC","crv":")") + (half == 32 ? "P-256" : "P-384") + R"(","x":")" +
           b64url(p.substr(0, half)) + R"(","y":")" + b64url(p.substr(half)) + "\"";
  }
  unsigned char raw[32];
  std::size_t len = sizeof raw;
  EVP_PKEY_get_raw_public_key(k.pkey, raw, &len);
  return R"("kty":"OKP","crv":"Ed25519","x":")" +
         b64url(std::string_view(reinterpret_cast<char*>(raw), len)) + "\"";
}

}  // namespace wsedge::test
