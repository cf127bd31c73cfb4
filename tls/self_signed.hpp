#pragma once
// A self-signed P-256 certificate and key, written as PEM files: for tests, benchmarks and
// development servers, never for production.
#include <string>

namespace wsedge::tls {

// Throws std::runtime_error when a file cannot be written.
void write_self_signed(const std::string& cert_path, const std::string& key_path,
                       const std::string& common_name, long valid_seconds = 86400);

}  // namespace wsedge::tls
