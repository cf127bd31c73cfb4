// Fuzzes the UTF-8 validator: fed in pieces cut where the input's first bytes say, fed whole,
// and judged by the reference validator, all three must agree, and the incremental one must
// refuse exactly at the first piece after which no continuation could make the text valid.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/protocol/utf8.hpp"
#include "fuzz_check.hpp"

using wsedge::fuzz::check;
using wsedge::protocol::Utf8Validator;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The input's last bytes (FuzzedDataProvider takes integers from the end) pick up to 15 cuts,
  // each modulo the text length; the bytes before them are the text.
  FuzzedDataProvider fdp(data, size);
  std::size_t ncuts = fdp.ConsumeIntegralInRange<std::size_t>(0, 15);
  std::vector<std::uint16_t> raw;
  for (std::size_t i = 0; i < ncuts; ++i) raw.push_back(fdp.ConsumeIntegral<std::uint16_t>());
  std::vector<std::uint8_t> text = fdp.ConsumeRemainingBytes<std::uint8_t>();
  const auto* bytes = reinterpret_cast<const std::byte*>(text.data());
  const std::size_t n = text.size();

  std::vector<std::size_t> cuts;
  for (std::uint16_t c : raw) cuts.push_back(n == 0 ? 0 : c % (n + 1));
  cuts.push_back(n);
  std::sort(cuts.begin(), cuts.end());

  Utf8Validator v;
  bool ok = true;
  std::size_t start = 0;
  for (std::size_t end : cuts) {
    bool fed = v.feed(bytes + start, end - start);
    // Once refused, every further byte is refused (feeding nothing adds no byte to refuse); and
    // refused exactly when the prefix has no valid future.
    if (end > start) check(ok || !fed);
    ok = ok && fed;
    auto ref = wsedge::fuzz::utf8_reference(text.data(), end);
    check(ok == ref.prefix);
    if (ok) check(v.complete() == ref.valid);
    start = end;
  }
  auto ref = wsedge::fuzz::utf8_reference(text.data(), n);
  bool incremental = ok && v.complete();
  check(incremental == ref.valid);
  check(Utf8Validator::valid(bytes, n) == ref.valid);
  // The state must not depend on history: after reset() it judges like a fresh validator.
  v.reset();
  check((v.feed(bytes, n) && v.complete()) == ref.valid);
  return 0;
}
