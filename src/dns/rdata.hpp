// Pure DNS rdata decoding (MX, A, AAAA, TXT) and the mapping of a resolver's raw result to
// MxAnswer/AddrAnswer/TxtAnswer. No libunbound here, so all of it is unit-tested and fuzzable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.hpp"
#include "common/result.hpp"
#include "dns/resolver.hpp"

namespace tern::dns {

// RFC 1035 §3.1: a name in wire form is at most 255 octets, labels at most 63.
inline constexpr size_t kMaxWireName = 255;
inline constexpr size_t kMaxLabel = 63;

// Decodes one uncompressed wire-format name from the start of `wire` into canonical text
// (lower case, no trailing dot; the root name gives ""). `used` receives the octets read.
// Compression pointers are refused: libunbound hands out rdata with names expanded.
Result<std::string> decode_name(std::span<const uint8_t> wire, size_t& used);

// MX rdata (RFC 1035 §3.3.9): 16-bit preference, then the exchange name filling the rest.
// The root name "." gives host "" (the null MX, RFC 7505).
Result<MxRecord> parse_mx_rdata(std::span<const uint8_t> rdata);
// A rdata (RFC 1035 §3.4.1): exactly 4 octets. AAAA (RFC 3596 §2.2): exactly 16.
Result<IpAddress> parse_a_rdata(std::span<const uint8_t> rdata);
Result<IpAddress> parse_aaaa_rdata(std::span<const uint8_t> rdata);
// TXT rdata (RFC 1035 §3.3.14): one or more length-prefixed character-strings, returned
// joined into one string.
Result<std::string> parse_txt_rdata(std::span<const uint8_t> rdata);

// TLSA rdata (RFC 6698 §2.1): usage, selector, matching type, then at least one octet of
// association data.
Result<TlsaRecord> parse_tlsa_rdata(std::span<const uint8_t> rdata);

// The owner name of the first record in a zone-format trust-anchor file (DS or DNSKEY, as
// /usr/share/dns/root.key), canonical ("" for the root). Comments (';'), blank lines and
// $-directives are skipped. Error when no record line is found.
Result<std::string> trust_anchor_zone(std::string_view text);

// What the resolver library reported for one query, as plain values.
struct RawResult {
  // When not empty the lookup itself failed (library error, timeout): TempFail with this
  // detail, whatever the other fields say.
  std::string failure;
  int rcode = 0;  // DNS RCODE (RFC 1035 §4.1.1)
  bool havedata = false;
  bool nxdomain = false;
  bool secure = false;
  bool bogus = false;                           // DNSSEC validation failed
  std::string why_bogus;                        // libunbound's reason when bogus
  std::vector<std::span<const uint8_t>> rdata;  // one entry per answer record
};

// The single place a raw result becomes an Rcode: NOERROR with data → Ok (or Malformed
// when a record does not decode), NOERROR without → NoData, NXDOMAIN → NxDomain; a
// failure, a bogus (DNSSEC) answer and every other rcode → TempFail.
MxAnswer to_mx_answer(const RawResult& raw);
AddrAnswer to_addr_answer(const RawResult& raw, bool v6);
// Records that do not decode are counted in `undecodable` rather than failing the answer:
// RFC 7671 §4.1 treats them as unusable, which the DANE policy decides about.
TlsaAnswer to_tlsa_answer(const RawResult& raw);
TxtAnswer to_txt_answer(const RawResult& raw);

// "SERVFAIL", "REFUSED", ... or "RCODE 11" for values without a name.
std::string rcode_name(int rcode);
// "Ok", "NoData", ... (for logs and tools).
const char* rcode_str(Rcode rc) noexcept;

}  // namespace tern::dns
