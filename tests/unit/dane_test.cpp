// Unit tests for DANE's pure parts: TLSA rdata, the trust anchor's zone, the per-host
// verdict from a TLSA answer (RFC 7672 §2.2) and the TLS plan it gives a host.
#include <doctest/doctest.h>

#include "delivery/dane.hpp"
#include "delivery/tls_policy.hpp"
#include "dns/rdata.hpp"

using namespace tern;
using namespace tern::delivery;

namespace {
std::vector<uint8_t> rdata(uint8_t u, uint8_t s, uint8_t m, size_t n, uint8_t fill = 0xab) {
  std::vector<uint8_t> v{u, s, m};
  v.insert(v.end(), n, fill);
  return v;
}
dns::TlsaRecord rec(uint8_t u, uint8_t s, uint8_t m, size_t n) { return *dns::parse_tlsa_rdata(rdata(u, s, m, n)); }
dns::TlsaAnswer answer(dns::Rcode rc, bool secure, std::vector<dns::TlsaRecord> records = {}) {
  dns::TlsaAnswer a;
  a.rcode = rc;
  a.secure = secure;
  a.records = std::move(records);
  a.detail = rc == dns::Rcode::TempFail ? "DNSSEC validation failed: signature expired" : "";
  return a;
}
}  // namespace

TEST_CASE("dns: TLSA rdata and raw TLSA results") {
  auto r = dns::parse_tlsa_rdata(rdata(3, 1, 1, 32));
  REQUIRE(r.ok());
  CHECK(r->usage == 3);
  CHECK(r->selector == 1);
  CHECK(r->mtype == 1);
  CHECK(r->data.size() == 32);
  CHECK_FALSE(dns::parse_tlsa_rdata(rdata(3, 1, 1, 0)).ok());  // no association data
  CHECK_FALSE(dns::parse_tlsa_rdata(std::vector<uint8_t>{3, 1}).ok());

  const auto good = rdata(2, 0, 1, 32), short_one = std::vector<uint8_t>{3, 1};
  dns::RawResult raw;
  raw.havedata = true;
  raw.secure = true;
  raw.rdata = {good, short_one};
  auto a = dns::to_tlsa_answer(raw);
  CHECK(a.rcode == dns::Rcode::Ok);
  CHECK(a.secure);
  CHECK(a.records.size() == 1);  // the short one is counted, not kept, and does not fail the set
  CHECK(a.undecodable == 1);

  dns::RawResult bogus;
  bogus.bogus = true;
  bogus.why_bogus = "signature expired";
  bogus.havedata = true;
  bogus.rdata = {good};
  auto b = dns::to_tlsa_answer(bogus);
  CHECK(b.rcode == dns::Rcode::TempFail);
  CHECK(b.records.empty());
  CHECK(b.detail.find("signature expired") != std::string::npos);
}

TEST_CASE("dns: the trust anchor file's zone") {
  CHECK(*dns::trust_anchor_zone("; root\n. IN DS 20326 8 2 E06D44B8\n") == "");
  CHECK(*dns::trust_anchor_zone("$TTL 3600\n\nDane.Example. 3600 IN DNSKEY 257 3 13 abc\n") == "dane.example");
  CHECK(*dns::trust_anchor_zone("zone.example.\tIN\tDS 1 13 2 ab\n  ( continued )\n") == "zone.example");
  CHECK_FALSE(dns::trust_anchor_zone("; nothing\n\n").ok());
  CHECK_FALSE(dns::trust_anchor_zone("relative IN DS 1 13 2 ab\n").ok());  // not fully qualified
}

TEST_CASE("dane: which TLSA records SMTP can use") {
  CHECK(tlsa_usable(rec(3, 1, 1, 32)));
  CHECK(tlsa_usable(rec(2, 0, 1, 32)));
  CHECK(tlsa_usable(rec(3, 0, 2, 64)));
  CHECK(tlsa_usable(rec(3, 0, 0, 300)));   // the full certificate
  CHECK_FALSE(tlsa_usable(rec(1, 1, 1, 32)));  // PKIX-EE
  CHECK_FALSE(tlsa_usable(rec(0, 0, 1, 32)));  // PKIX-TA
  CHECK_FALSE(tlsa_usable(rec(3, 1, 255, 32)));  // private matching type
  CHECK_FALSE(tlsa_usable(rec(3, 2, 1, 32)));  // unknown selector
  CHECK_FALSE(tlsa_usable(rec(3, 1, 1, 31)));  // a SHA-256 digest is 32 octets
  CHECK_FALSE(tlsa_usable(rec(3, 1, 2, 32)));  // a SHA-512 one 64
  CHECK(tlsa_name(25, "mx.example.org") == "_25._tcp.mx.example.org");
  CHECK(describe(rec(3, 1, 1, 2)) == "3 1 1 abab");
  CHECK(describe(rec(3, 1, 1, 40)).ends_with("..."));
}

TEST_CASE("dane: a host's verdict from its TLSA answer") {
  using dns::Rcode;
  auto d = dane_for_host(answer(Rcode::Ok, true, {rec(3, 1, 1, 32), rec(1, 1, 1, 32)}));
  CHECK(d.mode == DaneMode::Authenticate);
  CHECK(d.records.size() == 1);  // usage 1 dropped before anything reaches OpenSSL
  CHECK(dane_for_host(answer(Rcode::Ok, true, {rec(1, 1, 1, 32)})).mode == DaneMode::EncryptOnly);
  CHECK(dane_for_host(answer(Rcode::Ok, false, {rec(3, 1, 1, 32)})).mode == DaneMode::Opportunistic);
  CHECK(dane_for_host(answer(Rcode::NoData, true)).mode == DaneMode::Opportunistic);
  CHECK(dane_for_host(answer(Rcode::NxDomain, true)).mode == DaneMode::Opportunistic);
  auto bogus = dane_for_host(answer(Rcode::TempFail, false));
  CHECK(bogus.mode == DaneMode::Unusable);
  CHECK(bogus.why.find("signature expired") != std::string::npos);
  CHECK(dane_for_host(answer(Rcode::Malformed, true)).mode == DaneMode::Unusable);
}

TEST_CASE("dane: the TLS plan of each host of a dane destination") {
  config::Delivery d;
  d.tls = config::TlsLevel::Dane;
  scheduler::Destination dest{"mx:dane.example", false, "dane.example", "", 0};
  const TlsPlan plan = plan_tls(dest, d, {});
  CHECK(plan.level == config::TlsLevel::Dane);

  HostDane auth{DaneMode::Authenticate, {rec(3, 1, 1, 32)}, ""};
  auto a = plan_for_host(plan, auth);
  CHECK(a.level == config::TlsLevel::Dane);
  CHECK(a.tlsa.size() == 1);
  auto sec = session_security(a, false);
  CHECK(sec.starttls);
  CHECK(sec.require_tls);  // no plaintext to a host with TLSA records

  auto e = plan_for_host(plan, HostDane{DaneMode::EncryptOnly, {}, "none usable"});
  CHECK(e.level == config::TlsLevel::Encrypt);
  CHECK(session_security(e, false).require_tls);

  auto m = plan_for_host(plan, HostDane{});
  CHECK(m.level == config::TlsLevel::May);
  CHECK_FALSE(session_security(m, false).require_tls);

  // Other levels are not touched by a host's DANE state.
  config::Delivery v;
  v.tls = config::TlsLevel::Verify;
  CHECK(plan_for_host(plan_tls(dest, v, {}), auth).level == config::TlsLevel::Verify);
  CHECK(plan_for_host(plan_tls(dest, v, {}), auth).tlsa.empty());
}

TEST_CASE("dane: only a secure TLSA set takes precedence over MTA-STS") {
  CHECK_FALSE(dane_takes_precedence({}));
  CHECK_FALSE(dane_takes_precedence({HostDane{}, HostDane{DaneMode::Unusable, {}, "DNS timeout"}}));
  CHECK(dane_takes_precedence({HostDane{}, HostDane{DaneMode::EncryptOnly, {}, "none usable"}}));
  CHECK(dane_takes_precedence({HostDane{DaneMode::Authenticate, {rec(3, 1, 1, 32)}, ""}}));
}
