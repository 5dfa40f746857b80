// DSN parameter parsing and xtext.
#include "smtp/dsn_params.hpp"

#include <vector>

#include "common/log_escape.hpp"
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

namespace {
bool ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18)), out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
  }
}

// RFC 6533 §3: utf-8-addr-xtext / utf-8-addr-unitext, i.e. QCHARs, raw UTF-8 (unitext) and
// EmbeddedUnicodeChar "\x{HEX}". RFC 3461 "+XX" is decoded too: a sender that xtext-encodes
// a utf-8 address means the same address, and '+' is not a QCHAR, so it cannot be misread.
// With `embedded` false this is xtext that tolerates raw UTF-8 (an rfc822 ORCPT given under
// SMTPUTF8 without encoding; parse_params admits 8-bit octets only under SMTPUTF8).
Result<std::string> addr_decode(std::string_view s, bool embedded) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (embedded && c == '\\' && s.substr(i, 3) == "\\x{") {
      const size_t close = s.find('}', i + 3);
      const std::string_view digits = close == std::string_view::npos ? "" : s.substr(i + 3, close - i - 3);
      if (digits.empty() || digits.size() > 6) return Error::perm("5.5.4 Malformed ORCPT: bad \\x{...} escape");
      char32_t cp = 0;
      for (char d : digits) {
        const int v = hex(ascii_upper(d));
        if (v < 0) return Error::perm("5.5.4 Malformed ORCPT: bad \\x{...} escape");
        cp = cp * 16 + char32_t(v);
      }
      if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return Error::perm("5.5.4 Malformed ORCPT: \\x{...} is not a Unicode scalar value");
      append_utf8(out, cp);
      i = close + 1;
    } else if (c == '+') {
      auto d = xtext_decode(s.substr(i, 3));
      if (!d) return d.error();
      out += *d;
      i += 3;
    } else if (c >= 0x80) {
      const size_t n = utf8_char_length(s.substr(i));
      if (n == 0) return Error::perm("5.6.7 Malformed UTF-8 in ORCPT");
      out.append(s.substr(i, n));
      i += n;
    } else if (c < 33 || c > 126 || c == '=') {
      return Error::perm("5.5.4 Malformed ORCPT address");
    } else {
      out += char(c);  // a QCHAR (and, leniently, a '\' that starts no escape)
      ++i;
    }
  }
  return out;
}

// RFC 6533 §3 utf-8-addr-xtext: QCHARs as they are, everything else (non-ASCII, controls,
// SP, '\', '+', '=') as "\x{HEX}" of its code point.
std::string utf8_addr_xtext(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : utf8_char_length(s.substr(i));
    if (n == 0) n = 1;  // not reached: callers pass valid UTF-8
    char32_t cp = c;
    if (n > 1) {
      cp = c & (0xFF >> (n + 1));
      for (size_t k = 1; k < n; ++k) cp = cp << 6 | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    if (n == 1 && c > 32 && c < 127 && c != '\\' && c != '+' && c != '=') {
      out += char(c);
    } else {
      std::string digits;
      for (char32_t v = cp; v != 0 || digits.size() < 2; v >>= 4) digits.insert(digits.begin(), kHex[v & 15]);
      out += "\\x{" + digits + "}";
    }
    i += n;
  }
  return out;
}
}  // namespace

Result<Orcpt> parse_orcpt(std::string_view v) {
  const size_t semi = v.find(';');
  if (semi == std::string_view::npos || semi == 0) return Error::perm("5.5.4 ORCPT must be addr-type;address");
  Orcpt o;
  o.addr_type = std::string(v.substr(0, semi));
  for (char c : o.addr_type) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == ';') return Error::perm("5.5.4 Malformed ORCPT address type");
  }
  const std::string_view value = v.substr(semi + 1);
  Result<std::string> addr = std::string();
  if (iequals(o.addr_type, "utf-8")) {
    o.addr_type = "utf-8";
    addr = addr_decode(value, true);
  } else {
    if (iequals(o.addr_type, "rfc822")) o.addr_type = "rfc822";
    addr = addr_decode(value, false);
  }
  if (!addr) return addr.error();
  if (addr->empty()) return Error::perm("5.5.4 Empty ORCPT address");
  o.address = std::move(*addr);
  return o;
}

std::string format_orcpt(const Orcpt& o) {
  const bool mail_type = o.addr_type == "rfc822" || o.addr_type == "utf-8";
  if (mail_type && ascii(o.address)) return "rfc822;" + xtext_encode(o.address);
  if (mail_type && valid_utf8(o.address)) return "utf-8;" + utf8_addr_xtext(o.address);
  return o.addr_type + ";" + xtext_encode(o.address);
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
