// DSN parameter parsing and xtext.
#include "smtp/dsn_params.hpp"

#include <vector>

#include "common/strings.hpp"

namespace tern::smtp {

namespace {
constexpr char kHex[] = "0123456789ABCDEF";
int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // RFC 3461 §4: hexchar uses upper case only
}
}  // namespace

Result<std::string> xtext_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '+') {
      if (i + 3 > s.size()) return Error::perm("5.5.4 Malformed xtext: truncated +XX");
      const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0) return Error::perm("5.5.4 Malformed xtext: bad +XX");
      out += char(hi * 16 + lo);
      i += 2;
    } else if (c < 33 || c > 126 || c == '=') {
      return Error::perm("5.5.4 Malformed xtext");
    } else {
      out += char(c);
    }
  }
  return out;
}

std::string xtext_encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 33 || c > 126 || c == '+' || c == '=') {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out;
}

std::string Notify::str() const {
  if (never) return "NEVER";
  std::string s;
  auto add = [&](const char* w) {
    if (!s.empty()) s += ',';
    s += w;
  };
  if (success) add("SUCCESS");
  if (failure) add("FAILURE");
  if (delay) add("DELAY");
  return s;
}

Result<Ret> parse_ret(std::string_view v) {
  if (iequals(v, "FULL")) return Ret::Full;
  if (iequals(v, "HDRS")) return Ret::Hdrs;
  return Error::perm("5.5.4 RET must be FULL or HDRS");
}

Result<Notify> parse_notify(std::string_view v) {
  Notify n;
  n.given = true;
  size_t pos = 0;
  while (pos <= v.size()) {
    size_t comma = v.find(',', pos);
    if (comma == std::string_view::npos) comma = v.size();
    const std::string_view w = v.substr(pos, comma - pos);
    pos = comma + 1;
    if (iequals(w, "NEVER")) n.never = true;
    else if (iequals(w, "SUCCESS")) n.success = true;
    else if (iequals(w, "FAILURE")) n.failure = true;
    else if (iequals(w, "DELAY")) n.delay = true;
    else return Error::perm("5.5.4 NOTIFY takes NEVER or SUCCESS, FAILURE, DELAY");
  }
  // RFC 3461 §4.1: NEVER must appear alone.
  if (n.never && (n.success || n.failure || n.delay))
    return Error::perm("5.5.4 NOTIFY=NEVER cannot be combined with other values");
  return n;
}

namespace {
// RFC 3461 §4.2/§4.4: before xtext encoding the value is printable US-ASCII (the DSN
// format cannot carry anything else); RFC 6533 allows UTF-8 for the utf-8 address type.
bool printable(std::string_view s, bool allow_utf8) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f || (c >= 0x80 && !allow_utf8)) return false;
  return true;
}
}  // namespace

Result<std::string> parse_envid(std::string_view v) {
  auto d = xtext_decode(v);
  if (!d) return d.error();
  if (d->empty() || d->size() > 100) return Error::perm("5.5.4 ENVID must be 1 to 100 characters");
  if (!printable(*d, false)) return Error::perm("5.5.4 ENVID must be printable US-ASCII");
  return d;
}

Result<Orcpt> parse_orcpt(std::string_view v) {
  if (v.size() > 500) return Error::perm("5.5.4 ORCPT too long");
  const size_t semi = v.find(';');
  if (semi == std::string_view::npos || semi == 0) return Error::perm("5.5.4 ORCPT must be addr-type;address");
  Orcpt o;
  o.addr_type = std::string(v.substr(0, semi));
  for (char c : o.addr_type) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == ';') return Error::perm("5.5.4 Malformed ORCPT address type");
  }
  auto addr = xtext_decode(v.substr(semi + 1));
  if (!addr) return addr.error();
  if (addr->empty()) return Error::perm("5.5.4 Empty ORCPT address");
  if (!printable(*addr, iequals(o.addr_type, "utf-8"))) return Error::perm("5.5.4 ORCPT address must be printable");
  o.address = *addr;
  return o;
}

MessageDsn message_dsn(const std::vector<std::string>& params) {
  MessageDsn d;
  for (const auto& p : params) {
    if (istarts_with(p, "RET=")) {
      if (auto r = parse_ret(std::string_view(p).substr(4))) d.ret = *r;
    } else if (istarts_with(p, "ENVID=")) {
      if (auto e = parse_envid(std::string_view(p).substr(6))) d.envid = *e;
    }
  }
  return d;
}

RcptDsn rcpt_dsn(const std::vector<std::string>& params) {
  RcptDsn d;
  for (const auto& p : params) {
    if (istarts_with(p, "NOTIFY=")) {
      if (auto n = parse_notify(std::string_view(p).substr(7))) d.notify = *n;
    } else if (istarts_with(p, "ORCPT=")) {
      if (auto o = parse_orcpt(std::string_view(p).substr(6))) d.orcpt = *o;
    }
  }
  return d;
}

}  // namespace tern::smtp
