// Slows password guessing: each failed AUTH from a client address makes the next 535 wait
// longer (owned by the Server, shared by all its connections). Pure: times are passed in.
// Bounded: at most max_tracked addresses; scores decay with time and idle entries go away.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "common/net.hpp"

namespace tern::server {

class AuthThrottle {
 public:
  static constexpr int64_t kBaseDelayUs = 500'000;    // the first failure's delay
  static constexpr int64_t kMaxDelayUs = 16'000'000;  // doubling stops here
  static constexpr int64_t kDecayUs = 60'000'000;     // one failure forgiven per minute
  static constexpr size_t kMaxTracked = 10'000;

  explicit AuthThrottle(size_t max_tracked = kMaxTracked) : max_tracked_(max_tracked) {}

  // Records a failure from `client` at `now_us`; returns how long to hold its 535 (µs):
  // kBaseDelayUs doubled per failure still remembered, at most kMaxDelayUs.
  [[nodiscard]] int64_t failure(const IpAddress& client, int64_t now_us);

  [[nodiscard]] size_t tracked() const noexcept { return map_.size(); }

 private:
  struct Entry {
    uint32_t score = 0;
    int64_t last_us = 0;
  };
  static uint32_t decayed(const Entry& e, int64_t now_us) noexcept;
  static std::string key(const IpAddress& a);
  void make_room(int64_t now_us);

  size_t max_tracked_;
  std::unordered_map<std::string, Entry> map_;
};

}  // namespace tern::server
