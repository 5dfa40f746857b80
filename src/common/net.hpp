// IP addresses, CIDR networks and "host:port" endpoints as plain values (no sockets here).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tern {

struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // v4 uses the first 4

  static std::optional<IpAddress> parse(std::string_view text);
  [[nodiscard]] std::string str() const;
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as plain IPv4; anything else unchanged.
  [[nodiscard]] IpAddress unmapped() const;
  bool operator==(const IpAddress&) const = default;
};

struct Cidr {
  IpAddress base;
  int prefix = 0;

  // "10.0.0.0/8", "::1/128", or a bare address (full-length prefix).
  static std::optional<Cidr> parse(std::string_view text);
  [[nodiscard]] bool contains(const IpAddress& a) const;
  [[nodiscard]] std::string str() const;
};

struct Endpoint {
  IpAddress address;
  uint16_t port = 0;

  // "a.b.c.d:port" or "[v6]:port".
  static std::optional<Endpoint> parse(std::string_view text);
  [[nodiscard]] std::string str() const;
};

}  // namespace tern
