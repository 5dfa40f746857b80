// Queue ids: short, unique within a queue, and sortable by arrival (queue-format.md "Ids").
#pragma once

#include <cstdint>
#include <string>

namespace tern::queue {

// Encodes a microsecond timestamp as 11 Crockford base32 digits; ASCII order of the
// digits equals numeric order, so ids sort by arrival with `ls`.
std::string encode_id(uint64_t micros);
bool valid_id(std::string_view id) noexcept;

// Hands out ids from a clock reading, strictly increasing within the process even when
// many messages arrive in one microsecond or the clock steps back.
class IdGenerator {
 public:
  std::string next(uint64_t now_us) {
    last_ = now_us > last_ ? now_us : last_ + 1;
    return encode_id(last_);
  }

 private:
  uint64_t last_ = 0;
};

}  // namespace tern::queue
