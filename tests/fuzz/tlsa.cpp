// Fuzz target: TLSA handling from untrusted answers. The input is cut into records (each
// prefixed by one length octet), decoded, and turned into a host's DANE verdict, secure and
// not; every usable record kept must really be usable. The same bytes as text go through
// the trust-anchor file reader.
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "delivery/dane.hpp"
#include "dns/rdata.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  using namespace tern;
  dns::RawResult raw;
  raw.havedata = true;
  for (size_t pos = 0; pos < size;) {
    const size_t n = data[pos++];
    const size_t take = n < size - pos ? n : size - pos;
    raw.rdata.emplace_back(data + pos, take);
    pos += take;
  }
  for (bool secure : {false, true}) {
    raw.secure = secure;
    const dns::TlsaAnswer a = dns::to_tlsa_answer(raw);
    if (a.records.size() + a.undecodable != raw.rdata.size() && a.rcode == dns::Rcode::Ok) std::abort();
    const delivery::HostDane d = delivery::dane_for_host(a);
    for (const auto& r : d.records) {
      if (!delivery::tlsa_usable(r)) std::abort();
      (void)delivery::describe(r);
    }
    if (!secure && d.mode != delivery::DaneMode::Opportunistic) std::abort();
  }
  (void)dns::trust_anchor_zone(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
