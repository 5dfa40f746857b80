// Fuzz target: the MTA-STS policy file parser, the TXT record parser and the cache file
// codec (RFC 8461), all fed untrusted bytes from the network or the disk.
#include <string>
#include <string_view>

#include "sts/cache_entry.hpp"
#include "sts/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto p = tern::sts::parse_policy(in)) {
    // Whatever parses has the shape the rest of tern relies on.
    if (p->max_age < 0 || p->max_age > tern::sts::kMaxAgeLimit) __builtin_trap();
    if (p->mode != tern::sts::Mode::None && p->mx.empty()) __builtin_trap();
    for (const auto& m : p->mx) (void)tern::sts::mx_matches(*p, m);
  }
  (void)tern::sts::parse_txt({std::string(in)});
  if (auto e = tern::sts::decode_entry(in)) {
    auto again = tern::sts::decode_entry(tern::sts::encode_entry(*e));
    if (!again || again->id != e->id || again->text != e->text) __builtin_trap();
  }
  return 0;
}
