// Fuzzes the PROXY protocol header parser (v1 and v2) as a server sees it: the whole input,
// and a prefix of it (the bytes of a first read), must agree. The input's last two bytes pick
// the split point; the rest is what the proxy sent.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "engine/protocol/proxy_header.hpp"
#include "fuzz_check.hpp"

namespace {

using wsedge::fuzz::check;
using namespace wsedge::protocol;

bool same(const ProxyResult& a, const ProxyResult& b) {
  if (a.kind != b.kind || a.version != b.version || a.consumed != b.consumed) return false;
  if (a.kind == ProxyParse::kError) return std::string_view(a.error) == std::string_view(b.error);
  return a.local == b.local && (a.local || (a.ip == b.ip && a.port == b.port));
}

void check_result(std::span<const std::byte> in, const ProxyResult& r) {
  switch (r.kind) {
    case ProxyParse::kIncomplete:
      check(r.consumed == 0 && r.version == 0);
      // Never waits for more than a header can hold.
      check(in.size() < kMaxProxyV2);
      break;
    case ProxyParse::kError:
      check(r.consumed == 0 && r.error != nullptr && r.version <= 2);
      break;
    case ProxyParse::kDone: {
      check(r.consumed <= in.size() && r.error == nullptr);
      check(r.version == 1 || r.version == 2);
      check(r.consumed <= (r.version == 1 ? kMaxProxyV1 : kMaxProxyV2));
      if (r.version == 1) {
        check(r.consumed >= 15 && in[r.consumed - 2] == std::byte{'\r'} &&
              in[r.consumed - 1] == std::byte{'\n'});
      } else {
        check(r.consumed >= 16 && (in[12] >> 4) == std::byte{2});
      }
      // The header ends where it says, whatever follows: the bytes before its end are still
      // incomplete.
      check(parse_proxy_header(in.first(r.consumed - 1)).kind == ProxyParse::kIncomplete);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider fdp(data, size);
  const std::size_t split_raw = fdp.ConsumeIntegral<std::uint16_t>();
  const std::vector<std::uint8_t> bytes = fdp.ConsumeRemainingBytes<std::uint8_t>();
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());

  ProxyResult whole = parse_proxy_header(in);
  check_result(in, whole);

  // The answer for a prefix is "incomplete" or already the final answer.
  std::span<const std::byte> prefix = in.first(split_raw % (in.size() + 1));
  ProxyResult part = parse_proxy_header(prefix);
  check_result(prefix, part);
  if (part.kind != ProxyParse::kIncomplete) check(same(part, whole));
  if (whole.kind == ProxyParse::kDone && prefix.size() < whole.consumed)
    check(part.kind == ProxyParse::kIncomplete);
  return 0;
}
