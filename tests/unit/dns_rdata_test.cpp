// Unit tests for dns/rdata: MX/A/AAAA rdata decoding, every malformed shape, random bytes,
// and the mapping of raw resolver results to answers.
#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "dns/rdata.hpp"

using namespace tern;
using namespace tern::dns;

namespace {

using Bytes = std::vector<uint8_t>;

// Wire form of a dotted name ("" or "." is the root), labels taken verbatim.
Bytes wire_name(const std::string& dotted) {
  Bytes out;
  size_t start = 0;
  while (start < dotted.size()) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    const std::string label = dotted.substr(start, dot - start);
    if (!label.empty()) {
      out.push_back(uint8_t(label.size()));
      out.insert(out.end(), label.begin(), label.end());
    }
    start = dot + 1;
  }
  out.push_back(0);
  return out;
}

Bytes mx_rdata(uint16_t pref, const std::string& host) {
  Bytes out{uint8_t(pref >> 8), uint8_t(pref & 0xff)};
  const Bytes n = wire_name(host);
  out.insert(out.end(), n.begin(), n.end());
  return out;
}

std::string mx_error(const Bytes& b) {
  auto r = parse_mx_rdata(b);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::Perm);
  CHECK_FALSE(r.error().message.empty());
  return r.error().message;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("dns: MX rdata with a normal exchange") {
  auto r = parse_mx_rdata(mx_rdata(10, "mx1.zone.example"));
  REQUIRE(r.ok());
  CHECK(r->preference == 10);
  CHECK(r->host == "mx1.zone.example");
}

TEST_CASE("dns: MX exchange is canonical (lower case, no trailing dot)") {
  auto r = parse_mx_rdata(mx_rdata(65535, "MX1.Zone.EXAMPLE"));
  REQUIRE(r.ok());
  CHECK(r->preference == 65535);
  CHECK(r->host == "mx1.zone.example");
}

TEST_CASE("dns: null MX (RFC 7505) gives an empty host") {
  auto r = parse_mx_rdata(Bytes{0, 0, 0});
  REQUIRE(r.ok());
  CHECK(r->preference == 0);
  CHECK(r->host.empty());
}

TEST_CASE("dns: MX rdata too short") {
  CHECK(contains(mx_error(Bytes{}), "too short"));
  CHECK(contains(mx_error(Bytes{0}), "too short"));
  CHECK(contains(mx_error(Bytes{0, 10}), "too short"));
}

TEST_CASE("dns: MX exchange truncated") {
  // Label announces 5 octets, only 3 follow.
  CHECK(contains(mx_error(Bytes{0, 10, 5, 'a', 'b', 'c'}), "overruns"));
  // Complete label but no root label after it.
  CHECK(contains(mx_error(Bytes{0, 10, 3, 'a', 'b', 'c'}), "no root label"));
  // A full name cut one octet short.
  Bytes b = mx_rdata(10, "mx1.zone.example");
  b.pop_back();
  CHECK(contains(mx_error(b), "no root label"));
}

TEST_CASE("dns: MX exchange with a compression pointer is refused") {
  CHECK(contains(mx_error(Bytes{0, 10, 0xC0, 0x0C}), "compression pointer"));
  Bytes b{0, 10, 3, 'm', 'x', '1', 0xC0, 0x0C};
  CHECK(contains(mx_error(b), "compression pointer"));
}

TEST_CASE("dns: MX exchange with a reserved label type is refused") {
  CHECK(contains(mx_error(Bytes{0, 10, 0x40, 0}), "label type"));
  CHECK(contains(mx_error(Bytes{0, 10, 0x80, 0}), "label type"));
}

TEST_CASE("dns: MX rdata with octets after the exchange") {
  Bytes b = mx_rdata(10, "mx.example");
  b.push_back(0);
  CHECK(contains(mx_error(b), "after the exchange"));
}

TEST_CASE("dns: names up to 255 octets pass, longer ones fail") {
  // 4 labels of 63 octets: 4 * 64 + 1 = 257 octets, too long.
  const std::string l63(63, 'a');
  CHECK(
      contains(mx_error(mx_rdata(1, l63 + "." + l63 + "." + l63 + "." + l63)), "longer than 255"));
  // 3 * 64 + (1 + 61) + 1 = 255 octets: the longest legal name.
  const std::string longest = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
  REQUIRE(wire_name(longest).size() == 255);
  auto ok = parse_mx_rdata(mx_rdata(1, longest));
  REQUIRE(ok.ok());
  CHECK(ok->host == longest);
  // One octet more.
  const std::string too_long = l63 + "." + l63 + "." + l63 + "." + std::string(62, 'b');
  REQUIRE(wire_name(too_long).size() == 256);
  CHECK(contains(mx_error(mx_rdata(1, too_long)), "longer than 255"));
}

TEST_CASE("dns: label bytes that cannot appear in a host name are refused") {
  CHECK(contains(mx_error(Bytes{0, 1, 3, 'a', '.', 'b', 0}), "0x2e"));
  CHECK(contains(mx_error(Bytes{0, 1, 3, 'a', ' ', 'b', 0}), "0x20"));
  CHECK(contains(mx_error(Bytes{0, 1, 2, 'a', 0, 0}), "0x00"));
  CHECK(contains(mx_error(Bytes{0, 1, 2, 'a', 0xC3, 0}), "0xc3"));
  // Underscore and hyphen are fine.
  auto r = parse_mx_rdata(mx_rdata(1, "_x-y.example"));
  REQUIRE(r.ok());
  CHECK(r->host == "_x-y.example");
}

TEST_CASE("dns: decode_name reports the octets used") {
  size_t used = 99;
  Bytes b = wire_name("a.bc");
  b.push_back(0xFF);  // not part of the name
  auto r = decode_name(b, used);
  REQUIRE(r.ok());
  CHECK(*r == "a.bc");
  CHECK(used == 6);
  auto root = decode_name(Bytes{0}, used);
  REQUIRE(root.ok());
  CHECK(root->empty());
  CHECK(used == 1);
}

TEST_CASE("dns: A and AAAA rdata") {
  auto a = parse_a_rdata(Bytes{127, 0, 0, 2});
  REQUIRE(a.ok());
  CHECK_FALSE(a->v6);
  CHECK(a->str() == "127.0.0.2");
  Bytes six(16, 0);
  six[0] = 0x20;
  six[1] = 0x01;
  six[2] = 0x0d;
  six[3] = 0xb8;
  six[15] = 1;
  auto aaaa = parse_aaaa_rdata(six);
  REQUIRE(aaaa.ok());
  CHECK(aaaa->v6);
  CHECK(aaaa->str() == "2001:db8::1");
  for (size_t n : {0, 1, 3, 5, 16}) {
    auto r = parse_a_rdata(Bytes(n, 1));
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error().message, "not 4"));
  }
  for (size_t n : {0, 4, 15, 17, 32}) {
    auto r = parse_aaaa_rdata(Bytes(n, 1));
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error().message, "not 16"));
  }
}

TEST_CASE("dns: random rdata never crashes and round-trips when valid") {
  // Fixed seed: reproducible. Inputs are biased towards plausible names (small label
  // lengths, printable bytes) so the deeper paths run, not only the first length check.
  std::mt19937 rng(20251125);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> small(0, 12);
  std::uniform_int_distribution<int> letter('a', 'z');
  int valid = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    Bytes b;
    const int mode = iter % 3;
    if (mode == 0) {  // pure noise
      const int n = small(rng) * 3;
      for (int i = 0; i < n; ++i) b.push_back(uint8_t(byte(rng)));
    } else {  // labels with occasional corruption
      b = {uint8_t(byte(rng)), uint8_t(byte(rng))};
      const int labels = small(rng) / 3;
      for (int l = 0; l < labels; ++l) {
        const int len = small(rng) + 1;
        b.push_back(uint8_t(len));
        for (int i = 0; i < len; ++i) b.push_back(uint8_t(letter(rng)));
      }
      b.push_back(0);
      if (mode == 2 && !b.empty()) b[size_t(byte(rng)) % b.size()] = uint8_t(byte(rng));
      if (mode == 2 && byte(rng) < 64) b.resize(size_t(byte(rng)) % (b.size() + 1));
    }
    auto mx = parse_mx_rdata(b);
    if (mx.ok()) {
      ++valid;
      // A valid answer re-encodes to the same octets (modulo case).
      Bytes again = mx_rdata(mx->preference, mx->host);
      REQUIRE(again.size() == b.size());
    } else {
      CHECK_FALSE(mx.error().message.empty());
    }
    auto a = parse_a_rdata(b);
    CHECK(a.ok() == (b.size() == 4));
    auto aaaa = parse_aaaa_rdata(b);
    CHECK(aaaa.ok() == (b.size() == 16));
  }
  CHECK(valid > 1000);  // the generator does reach the success path
}

TEST_CASE("dns: raw results map to MX answers") {
  const Bytes mx10 = mx_rdata(10, "mx1.zone.example");
  const Bytes mx20 = mx_rdata(20, "MX2.zone.example.");
  RawResult raw;
  raw.havedata = true;
  raw.secure = true;
  raw.rdata = {mx10, mx20};
  auto ok = to_mx_answer(raw);
  CHECK(ok.rcode == Rcode::Ok);
  CHECK(ok.secure);
  REQUIRE(ok.records.size() == 2);
  CHECK(ok.records[0].host == "mx1.zone.example");
  CHECK(ok.records[1].preference == 20);
  CHECK(ok.records[1].host == "mx2.zone.example");

  const Bytes bad{0, 10, 5, 'a'};
  raw.rdata = {mx10, bad};
  auto malformed = to_mx_answer(raw);
  CHECK(malformed.rcode == Rcode::Malformed);
  CHECK(malformed.records.empty());
  CHECK(contains(malformed.detail, "MX record 2"));

  RawResult nodata;
  CHECK(to_mx_answer(nodata).rcode == Rcode::NoData);

  RawResult nx;
  nx.rcode = 3;
  nx.nxdomain = true;
  CHECK(to_mx_answer(nx).rcode == Rcode::NxDomain);

  RawResult servfail;
  servfail.rcode = 2;
  auto sf = to_mx_answer(servfail);
  CHECK(sf.rcode == Rcode::TempFail);
  CHECK(contains(sf.detail, "SERVFAIL"));

  RawResult refused;
  refused.rcode = 5;
  CHECK(to_mx_answer(refused).rcode == Rcode::TempFail);
  CHECK(contains(to_mx_answer(refused).detail, "REFUSED"));

  RawResult bogus;
  bogus.rcode = 2;
  bogus.bogus = true;
  bogus.why_bogus = "signature expired";
  auto bg = to_mx_answer(bogus);
  CHECK(bg.rcode == Rcode::TempFail);
  CHECK(contains(bg.detail, "DNSSEC"));
  CHECK(contains(bg.detail, "signature expired"));

  RawResult timeout;
  timeout.failure = "DNS timeout";
  timeout.havedata = true;
  timeout.rdata = {mx10};
  auto to = to_mx_answer(timeout);
  CHECK(to.rcode == Rcode::TempFail);
  CHECK(to.detail == "DNS timeout");
  CHECK(to.records.empty());
}

TEST_CASE("dns: raw results map to address answers") {
  const Bytes v4{127, 0, 0, 2};
  Bytes v6(16, 0);
  v6[15] = 1;
  RawResult raw;
  raw.havedata = true;
  raw.rdata = {v4};
  auto a = to_addr_answer(raw, false);
  CHECK(a.rcode == Rcode::Ok);
  REQUIRE(a.addresses.size() == 1);
  CHECK(a.addresses[0].str() == "127.0.0.2");

  raw.rdata = {v6};
  auto aaaa = to_addr_answer(raw, true);
  CHECK(aaaa.rcode == Rcode::Ok);
  REQUIRE(aaaa.addresses.size() == 1);
  CHECK(aaaa.addresses[0].str() == "::1");

  // A 16-octet record where an A was asked for is malformed.
  auto wrong = to_addr_answer(raw, false);
  CHECK(wrong.rcode == Rcode::Malformed);
  CHECK(contains(wrong.detail, "A record 1"));

  RawResult nx;
  nx.rcode = 3;
  CHECK(to_addr_answer(nx, true).rcode == Rcode::NxDomain);
  RawResult nodata;
  CHECK(to_addr_answer(nodata, false).rcode == Rcode::NoData);
}

TEST_CASE("dns: rcode names") {
  CHECK(rcode_name(2) == "SERVFAIL");
  CHECK(rcode_name(11) == "RCODE 11");
  CHECK(std::string(rcode_str(Rcode::Malformed)) == "Malformed");
}
