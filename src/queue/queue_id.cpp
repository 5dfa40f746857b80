// Queue id encoding.
#include "queue/queue_id.hpp"

namespace tern::queue {

namespace {
constexpr char kDigits[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";  // Crockford base32, ASCII-sorted
constexpr size_t kIdLength = 11;                                // 55 bits of microseconds
}  // namespace

std::string encode_id(uint64_t micros) {
  std::string out(kIdLength, '0');
  for (size_t i = kIdLength; i-- > 0;) {
    out[i] = kDigits[micros & 31];
    micros >>= 5;
  }
  return out;
}

bool valid_id(std::string_view id) noexcept {
  if (id.size() != kIdLength) return false;
  for (char c : id) {
    bool found = false;
    for (const char* d = kDigits; *d; ++d) found |= (*d == c);
    if (!found) return false;
  }
  return true;
}

}  // namespace tern::queue
