// Small ASCII string helpers used by the protocol parsers (SMTP is case-insensitive ASCII).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace tern {

inline char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }
inline char ascii_upper(char c) noexcept { return (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c; }

inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}
inline std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_upper(c);
  return out;
}
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}
inline bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}
inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
// Lower-cases a domain and drops one trailing dot: the canonical form used for every
// domain comparison (relay decisions, self-recognition).
inline std::string canonical_domain(std::string_view d) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  return to_lower(d);
}

// Lower-case hex of `data`; past `max_octets` octets the rest is cut and "..." appended
// (log lines show a digest's start, not 64 KiB of certificate).
inline std::string hex_lower(std::span<const uint8_t> data, size_t max_octets = SIZE_MAX) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const size_t n = data.size() < max_octets ? data.size() : max_octets;
  std::string out;
  out.reserve(2 * n + 3);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 15]);
  }
  if (n < data.size()) out += "...";
  return out;
}

}  // namespace tern
