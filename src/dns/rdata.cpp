// Decoding of MX/A/AAAA rdata and the mapping of raw resolver results to answers.
// Every read is bounds-checked against the span: the bytes come from the network.
#include "dns/rdata.hpp"

#include <cstdio>

#include "common/strings.hpp"

namespace tern::dns {

namespace {

std::string hex_byte(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

// A host name ends up in log lines, in SMTP diagnostics and in connect attempts, so a
// label byte that would be ambiguous in text form ('.') or unprintable is refused rather
// than escaped: no real mail exchanger has one.
bool host_label_byte(uint8_t b) { return b > 0x20 && b < 0x7f && b != '.'; }

}  // namespace

Result<std::string> decode_name(std::span<const uint8_t> wire, size_t& used) {
  used = 0;
  std::string text;
  size_t pos = 0;
  for (;;) {
    if (pos >= wire.size()) return Error::perm("name truncated: no root label");
    const uint8_t len = wire[pos];
    if ((len & 0xC0) == 0xC0)
      return Error::perm("compression pointer in name at octet " + std::to_string(pos));
    if ((len & 0xC0) != 0)  // RFC 6891 §5 retired the 01 and 10 label types
      return Error::perm("unsupported label type " + hex_byte(len) + " at octet " +
                         std::to_string(pos));
    // len <= 63 from here on, as the two top bits are clear.
    if (pos + 1 + len > kMaxWireName)
      return Error::perm("name longer than " + std::to_string(kMaxWireName) + " octets");
    if (len == 0) {
      used = pos + 1;
      return canonical_domain(text);
    }
    if (pos + 1 + len > wire.size())
      return Error::perm("label at octet " + std::to_string(pos) + " overruns the data (" +
                         std::to_string(len) + " octets announced, " +
                         std::to_string(wire.size() - pos - 1) + " left)");
    for (size_t i = pos + 1; i < pos + 1 + len; ++i)
      if (!host_label_byte(wire[i]))
        return Error::perm("byte " + hex_byte(wire[i]) + " in a label at octet " +
                           std::to_string(i) + " is not allowed in a host name");
    if (!text.empty()) text.push_back('.');
    text.append(reinterpret_cast<const char*>(wire.data() + pos + 1), len);
    pos += 1 + len;
  }
}

Result<TlsaRecord> parse_tlsa_rdata(std::span<const uint8_t> rdata) {
  if (rdata.size() < 4)
    return Error::perm("TLSA record of " + std::to_string(rdata.size()) +
                       " octets: at least 4 (usage, selector, matching type, data)");
  TlsaRecord r;
  r.usage = rdata[0];
  r.selector = rdata[1];
  r.mtype = rdata[2];
  r.data.assign(rdata.begin() + 3, rdata.end());
  return r;
}

Result<std::string> trust_anchor_zone(std::string_view text) {
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (const size_t c = line.find(';'); c != std::string_view::npos) line = line.substr(0, c);
    // A record line starts with its owner name; an indented line continues the previous one.
    if (line.empty() || line[0] == '$' || line[0] == ' ' || line[0] == '\t' || line[0] == '\r') continue;
    const size_t end = line.find_first_of(" \t\r");
    std::string owner(line.substr(0, end));
    if (owner == "." || owner == "@") return std::string();
    if (owner.back() != '.')
      return Error::perm("trust anchor owner \"" + owner + "\" is not a fully qualified name (no final dot)");
    owner.pop_back();
    std::string canon = canonical_domain(owner);
    if (canon.empty() || canon.size() > 253) return Error::perm("trust anchor owner \"" + owner + "\" is not a domain name");
    return canon;
  }
  return Error::perm("no DS or DNSKEY record in the trust anchor file");
}

Result<MxRecord> parse_mx_rdata(std::span<const uint8_t> rdata) {
  if (rdata.size() < 3)
    return Error::perm("MX rdata too short (" + std::to_string(rdata.size()) + " octets)");
  MxRecord mx;
  mx.preference = uint16_t((rdata[0] << 8) | rdata[1]);
  size_t used = 0;
  auto name = decode_name(rdata.subspan(2), used);
  if (!name) return Error::perm("MX exchange: " + name.error().message);
  if (2 + used != rdata.size())
    return Error::perm("MX rdata has " + std::to_string(rdata.size() - 2 - used) +
                       " octet(s) after the exchange name");
  mx.host = std::move(name.value());
  return mx;
}

namespace {
// A and AAAA rdata are the address in network order, nothing else (RFC 1035 §3.4.1,
// RFC 3596 §2.2).
Result<IpAddress> parse_address_rdata(std::span<const uint8_t> rdata, bool v6) {
  const size_t want = v6 ? 16 : 4;
  if (rdata.size() != want)
    return Error::perm(std::string(v6 ? "AAAA" : "A") + " rdata is " + std::to_string(rdata.size()) +
                       " octets, not " + std::to_string(want));
  IpAddress a;
  a.v6 = v6;
  for (size_t i = 0; i < want; ++i) a.bytes[i] = rdata[i];
  return a;
}
}  // namespace

Result<IpAddress> parse_a_rdata(std::span<const uint8_t> rdata) { return parse_address_rdata(rdata, false); }
Result<IpAddress> parse_aaaa_rdata(std::span<const uint8_t> rdata) { return parse_address_rdata(rdata, true); }

std::string rcode_name(int rcode) {
  switch (rcode) {
    case 0:
      return "NOERROR";
    case 1:
      return "FORMERR";
    case 2:
      return "SERVFAIL";
    case 3:
      return "NXDOMAIN";
    case 4:
      return "NOTIMP";
    case 5:
      return "REFUSED";
    default:
      return "RCODE " + std::to_string(rcode);
  }
}

const char* rcode_str(Rcode rc) noexcept {
  switch (rc) {
    case Rcode::Ok:
      return "Ok";
    case Rcode::NoData:
      return "NoData";
    case Rcode::NxDomain:
      return "NxDomain";
    case Rcode::TempFail:
      return "TempFail";
    case Rcode::Malformed:
      return "Malformed";
  }
  return "?";
}

namespace {

// The rcode and detail shared by every answer kind; Ok means "decode the records".
struct Verdict {
  Rcode rcode;
  std::string detail;
};

Verdict classify(const RawResult& raw) {
  if (!raw.failure.empty()) return {Rcode::TempFail, raw.failure};
  // Bogus comes first: libunbound reports it as SERVFAIL, but the detail matters more.
  if (raw.bogus)
    return {Rcode::TempFail, "DNSSEC validation failed" +
                                 (raw.why_bogus.empty() ? std::string() : ": " + raw.why_bogus)};
  if (raw.rcode == 3 || raw.nxdomain) return {Rcode::NxDomain, "NXDOMAIN"};
  if (raw.rcode != 0) return {Rcode::TempFail, "DNS server answered " + rcode_name(raw.rcode)};
  if (!raw.havedata || raw.rdata.empty()) return {Rcode::NoData, "no records of that type"};
  return {Rcode::Ok, ""};
}

// Every answer kind: the rcode from classify(), then each record decoded by `parse` into
// `items`; one record that does not decode makes the whole answer Malformed.
template <typename Answer, typename Item, typename Parse>
Answer decode_answer(const RawResult& raw, std::vector<Item> Answer::*items, const char* type, Parse parse) {
  Answer out;
  out.secure = raw.secure;
  auto v = classify(raw);
  out.rcode = v.rcode;
  out.detail = std::move(v.detail);
  if (out.rcode != Rcode::Ok) return out;
  for (size_t i = 0; i < raw.rdata.size(); ++i) {
    auto r = parse(raw.rdata[i]);
    if (!r) {
      out.rcode = Rcode::Malformed;
      out.detail = std::string(type) + " record " + std::to_string(i + 1) + ": " + r.error().message;
      (out.*items).clear();
      return out;
    }
    (out.*items).push_back(std::move(r.value()));
  }
  return out;
}

}  // namespace

MxAnswer to_mx_answer(const RawResult& raw) {
  return decode_answer(raw, &MxAnswer::records, "MX", parse_mx_rdata);
}

AddrAnswer to_addr_answer(const RawResult& raw, bool v6) {
  return decode_answer(raw, &AddrAnswer::addresses, v6 ? "AAAA" : "A", v6 ? parse_aaaa_rdata : parse_a_rdata);
}

Result<std::string> parse_txt_rdata(std::span<const uint8_t> rdata) {
  if (rdata.empty()) return Error::perm("empty TXT rdata");
  std::string out;
  size_t i = 0;
  while (i < rdata.size()) {
    const size_t len = rdata[i++];
    if (len > rdata.size() - i) return Error::perm("TXT character-string overruns its rdata");
    out.append(reinterpret_cast<const char*>(rdata.data() + i), len);
    i += len;
  }
  return out;
}

TlsaAnswer to_tlsa_answer(const RawResult& raw) {
  TlsaAnswer out;
  out.secure = raw.secure;
  auto v = classify(raw);
  out.rcode = v.rcode;
  out.detail = std::move(v.detail);
  if (out.rcode != Rcode::Ok) return out;
  for (const auto& rd : raw.rdata) {
    if (auto t = parse_tlsa_rdata(rd)) out.records.push_back(std::move(t.value()));
    else ++out.undecodable;
  }
  return out;
}

TxtAnswer to_txt_answer(const RawResult& raw) {
  return decode_answer(raw, &TxtAnswer::records, "TXT", parse_txt_rdata);
}

}  // namespace tern::dns
