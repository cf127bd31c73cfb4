#pragma once
// Test helper: a throw-away self-signed certificate for "localhost", removed again.
#include <unistd.h>

#include <string>

#include "tls/self_signed.hpp"

namespace wsedge::test {

struct TempCert {
  static inline int made = 0;
  std::string tag = std::to_string(getpid()) + "-" + std::to_string(made++);
  std::string cert = "/tmp/wsedge-test-cert-" + tag + ".pem";
  std::string key = "/tmp/wsedge-test-key-" + tag + ".pem";
  TempCert() { tls::write_self_signed(cert, key, "localhost", 3600); }
  ~TempCert() {
    unlink(cert.c_str());
    unlink(key.c_str());
  }
};

}  // namespace wsedge::test
