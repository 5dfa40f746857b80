// DANE for SMTP, the pure part (RFC 7672 §2.2, RFC 7671 §4-5): what one MX host's TLSA
// answer means for the connection to it. No DNS or OpenSSL here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dns/resolver.hpp"

namespace tern::delivery {

enum class DaneMode {
  Opportunistic,  // no secure TLSA records (none, insecure, or no lookup): TLS as under `may`
  Authenticate,   // secure usable records: TLS required and authenticated by them
  EncryptOnly,    // a secure TLSA set with no usable record: TLS required, not authenticated
  Unusable,       // the lookup failed or was bogus: the host is not used at all
};

struct HostDane {
  DaneMode mode = DaneMode::Opportunistic;
  std::vector<dns::TlsaRecord> records;  // Authenticate: the usable records
  std::string why;                       // Unusable / EncryptOnly: the reason, for logs
};

// "_25._tcp.mx.example.org" (RFC 6698 §3).
std::string tlsa_name(uint16_t port, const std::string& host);

// Usable for SMTP (RFC 7672 §3.1): DANE-TA(2) or DANE-EE(3), selector 0 or 1, matching
// type 0, 1 (32 octets) or 2 (64 octets). PKIX-TA(0)/PKIX-EE(1) and private matching types
// are dropped before anything reaches OpenSSL.
bool tlsa_usable(const dns::TlsaRecord& r);

HostDane dane_for_host(const dns::TlsaAnswer& a);

// RFC 8461 §2: where a domain's MX hosts publish DNSSEC-secure TLSA records, DANE takes
// precedence over its MTA-STS policy. True when some host has a secure TLSA set (usable or
// not); a failed lookup proves nothing, so it never lifts an MTA-STS policy.
bool dane_takes_precedence(const std::vector<HostDane>& hosts);

// "3 1 1 5b2e...": the record as a log line shows it (data in hex, cut after 32 octets).
std::string describe(const dns::TlsaRecord& r);
const char* to_string(DaneMode m) noexcept;

}  // namespace tern::delivery
