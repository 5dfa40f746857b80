// Parsing and matching of IP addresses, CIDR networks and endpoints.
#include "common/net.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace tern {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > 63) return std::nullopt;
  std::string s(text);
  IpAddress a;
  if (s.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
    a.v6 = false;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  a.v6 = true;
  return a;
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf);
  return buf;
}

IpAddress IpAddress::unmapped() const {
  static constexpr uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!v6 || std::memcmp(bytes.data(), prefix, 12) != 0) return *this;
  IpAddress out;
  out.v6 = false;
  std::memcpy(out.bytes.data(), bytes.data() + 12, 4);
  return out;
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  const int max = addr->v6 ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    auto digits = text.substr(slash + 1);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (ec != std::errc() || p != digits.data() + digits.size() || digits.empty() || prefix < 0 ||
        prefix > max)
      return std::nullopt;
  }
  Cidr c{*addr, prefix};
  // Normalise the base so that "10.1.2.3/8" means 10.0.0.0/8.
  for (int bit = prefix; bit < max; ++bit) c.base.bytes[bit / 8] &= uint8_t(~(0x80u >> (bit % 8)));
  return c;
}

bool Cidr::contains(const IpAddress& raw) const {
  const IpAddress a = raw.unmapped();
  if (a.v6 != base.v6) return false;
  for (int bit = 0; bit < prefix; ++bit) {
    const uint8_t mask = uint8_t(0x80u >> (bit % 8));
    if ((a.bytes[bit / 8] & mask) != (base.bytes[bit / 8] & mask)) return false;
  }
  return true;
}

std::string Cidr::str() const { return base.str() + "/" + std::to_string(prefix); }

std::optional<Endpoint> Endpoint::parse(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    auto a = IpAddress::parse(host);
    if (!a || !a->v6) return std::nullopt;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // v6 needs brackets
  }
  auto addr = IpAddress::parse(host);
  if (!addr) return std::nullopt;
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || port.empty() || value > 65535)
    return std::nullopt;
  return Endpoint{*addr, uint16_t(value)};
}

std::string Endpoint::str() const {
  return address.v6 ? "[" + address.str() + "]:" + std::to_string(port)
                    : address.str() + ":" + std::to_string(port);
}

}  // namespace tern
