// Per-address AUTH failure delays: doubling, capped, decaying, bounded.
#include "server/auth_throttle.hpp"

#include <algorithm>

namespace tern::server {

uint32_t AuthThrottle::decayed(const Entry& e, int64_t now_us) noexcept {
  const int64_t idle = now_us > e.last_us ? now_us - e.last_us : 0;
  const int64_t forgiven = idle / kDecayUs;
  return forgiven >= int64_t(e.score) ? 0 : e.score - uint32_t(forgiven);
}

// An IPv6 client usually holds a whole /64: its addresses count as one.
std::string AuthThrottle::key(const IpAddress& a) {
  IpAddress k = a.unmapped();
  if (k.v6)
    for (size_t i = 8; i < 16; ++i) k.bytes[i] = 0;
  return k.str();
}

void AuthThrottle::make_room(int64_t now_us) {
  std::erase_if(map_, [&](const auto& kv) { return decayed(kv.second, now_us) == 0; });
  if (map_.size() < max_tracked_) return;
  // Still full of recent failures (a distributed attack): forget the least recent one.
  auto oldest = std::min_element(map_.begin(), map_.end(), [](const auto& a, const auto& b) {
    return a.second.last_us < b.second.last_us;
  });
  map_.erase(oldest);
}

int64_t AuthThrottle::failure(const IpAddress& client, int64_t now_us) {
  const std::string k = key(client);
  auto it = map_.find(k);
  if (it == map_.end()) {
    if (map_.size() >= max_tracked_) make_room(now_us);
    it = map_.emplace(k, Entry{}).first;
  }
  Entry& e = it->second;
  e.score = std::min<uint32_t>(decayed(e, now_us) + 1, 64);
  e.last_us = now_us;
  int64_t delay = kBaseDelayUs;
  for (uint32_t i = 1; i < e.score && delay < kMaxDelayUs; ++i) delay *= 2;
  return std::min(delay, kMaxDelayUs);
}

}  // namespace tern::server
