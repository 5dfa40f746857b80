// Fuzz target: DNS rdata parsing (MX, A, AAAA) from untrusted answers.
#include <span>

#include "dns/rdata.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  const std::span<const unsigned char> in(data, size);
  (void)tern::dns::parse_mx_rdata(in);
  (void)tern::dns::parse_a_rdata(in);
  (void)tern::dns::parse_aaaa_rdata(in);
  return 0;
}
