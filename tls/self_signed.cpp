#include "self_signed.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

namespace wsedge::tls {

void write_self_signed(const std::string& cert_path, const std::string& key_path,
                       const std::string& common_name, long valid_seconds) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  if (!key || !x) throw std::runtime_error("cannot make a key or certificate");
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), valid_seconds);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(x.get(), X509_get_subject_name(x.get()));
  X509_sign(x.get(), key.get(), EVP_sha256());
  auto write = [](const std::string& path, auto&& fn) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) throw std::runtime_error("cannot write " + path);
    bool ok = fn(f) == 1;
    std::fclose(f);
    if (!ok) throw std::runtime_error("cannot write " + path);
  };
  write(cert_path, [&](FILE* f) { return PEM_write_X509(f, x.get()); });
  write(key_path, [&](FILE* f) {
    return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
}

}  // namespace wsedge::tls
