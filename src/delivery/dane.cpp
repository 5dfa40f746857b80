// DANE per host: TLSA answer → how the connection to that host is secured.
#include "delivery/dane.hpp"

#include "common/strings.hpp"

namespace tern::delivery {

std::string tlsa_name(uint16_t port, const std::string& host) {
  return "_" + std::to_string(port) + "._tcp." + host;
}

bool tlsa_usable(const dns::TlsaRecord& r) {
  if (r.usage != 2 && r.usage != 3) return false;
  if (r.selector > 1) return false;
  switch (r.mtype) {
    case 0: return !r.data.empty();
    case 1: return r.data.size() == 32;
    case 2: return r.data.size() == 64;
    default: return false;
  }
}

HostDane dane_for_host(const dns::TlsaAnswer& a) {
  HostDane d;
  switch (a.rcode) {
    case dns::Rcode::Ok:
      break;
    case dns::Rcode::NoData:
    case dns::Rcode::NxDomain:
      // Secure or not, "no TLSA records" leaves the host opportunistic (RFC 7672 §2.2).
      return d;
    case dns::Rcode::TempFail:
    case dns::Rcode::Malformed:
      // RFC 7672 §2.2: a failed or bogus TLSA lookup must not be taken as "no records"
      // (an attacker could force that): the host is skipped.
      d.mode = DaneMode::Unusable;
      d.why = "TLSA lookup failed: " + a.detail;
      return d;
  }
  // Records that did not come back validated protect nothing: as if there were none.
  if (!a.secure) return d;
  for (const auto& r : a.records)
    if (tlsa_usable(r)) d.records.push_back(r);
  if (!d.records.empty()) {
    d.mode = DaneMode::Authenticate;
    return d;
  }
  // RFC 7672 §2.2: a secure set with no usable record still means the server does TLS.
  d.mode = DaneMode::EncryptOnly;
  d.why = std::to_string(a.records.size() + a.undecodable) + " TLSA record(s), none usable for SMTP";
  return d;
}

bool dane_takes_precedence(const std::vector<HostDane>& hosts) {
  for (const auto& h : hosts)
    if (h.mode == DaneMode::Authenticate || h.mode == DaneMode::EncryptOnly) return true;
  return false;
}

std::string describe(const dns::TlsaRecord& r) {
  return std::to_string(r.usage) + " " + std::to_string(r.selector) + " " + std::to_string(r.mtype) + " " +
         hex_lower(r.data, 32);
}

const char* to_string(DaneMode m) noexcept {
  switch (m) {
    case DaneMode::Opportunistic: return "opportunistic";
    case DaneMode::Authenticate: return "authenticate";
    case DaneMode::EncryptOnly: return "encrypt-only";
    case DaneMode::Unusable: return "unusable";
  }
  return "?";
}

}  // namespace tern::delivery
