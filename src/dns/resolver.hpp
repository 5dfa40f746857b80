// The resolver interface delivery uses, and the plain result types. One real
// implementation (unbound_resolver.cpp, libunbound on the loop) and fakes in unit tests.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/net.hpp"

namespace tern::dns {

// How a lookup ended. NoData: the name exists but has no record of that type.
enum class Rcode { Ok, NoData, NxDomain, TempFail, Malformed };

struct MxRecord {
  uint16_t preference = 0;
  std::string host;  // canonical: lower case, no trailing dot; "" for the null MX "."
};

struct MxAnswer {
  Rcode rcode = Rcode::TempFail;
  std::vector<MxRecord> records;
  bool secure = false;      // DNSSEC-validated
  std::string detail;       // for log lines and DSN diagnostics when not Ok
};

struct AddrAnswer {
  Rcode rcode = Rcode::TempFail;
  std::vector<IpAddress> addresses;
  bool secure = false;
  std::string detail;
};

// TLSA (RFC 6698 §2.1): how the certificate association data is matched.
struct TlsaRecord {
  uint8_t usage = 0;     // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
  uint8_t selector = 0;  // 0 whole certificate, 1 SubjectPublicKeyInfo
  uint8_t mtype = 0;     // 0 exact, 1 SHA2-256, 2 SHA2-512
  std::vector<uint8_t> data;
  bool operator==(const TlsaRecord&) const = default;
};

struct TlsaAnswer {
  Rcode rcode = Rcode::TempFail;
  std::vector<TlsaRecord> records;  // the records that decode (at least 4 octets each)
  size_t undecodable = 0;           // records too short to be TLSA (counted, not kept)
  bool secure = false;
  std::string detail;
};

// TXT records (RFC 1035 §3.3.14), each record's character-strings joined (RFC 7208 §3.3
// style), as MTA-STS reads `_mta-sts` records (RFC 8461 §3.1).
struct TxtAnswer {
  Rcode rcode = Rcode::TempFail;
  std::vector<std::string> records;
  bool secure = false;
  std::string detail;
};

class Resolver {
 public:
  virtual ~Resolver() = default;
  // Callbacks run on the loop thread, exactly once, never inside the call itself.
  virtual void resolve_mx(const std::string& domain, std::function<void(MxAnswer)> cb) = 0;
  // A (v4) or AAAA (v6) records of `host`.
  virtual void resolve_addr(const std::string& host, bool v6, std::function<void(AddrAnswer)> cb) = 0;
  // TLSA records at `name` ("_25._tcp.mx.example.org"), with their DNSSEC status.
  virtual void resolve_tlsa(const std::string& name, std::function<void(TlsaAnswer)> cb) = 0;
  // TXT records of `name`.
  virtual void resolve_txt(const std::string& name, std::function<void(TxtAnswer)> cb) = 0;
};

}  // namespace tern::dns
