// CRC-32C: the reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF.
// A table for any CPU, the SSE 4.2 instruction when the CPU has it (checked once at run time,
// so the binary still runs on CPUs without it).
#include "queue/crc32c.hpp"

#include <array>
#include <cstring>

namespace tern::queue {

namespace {

constexpr uint32_t kPoly = 0x82F63B78u;

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kTable = make_table();

uint32_t by_table(uint32_t crc, const unsigned char* p, size_t n) noexcept {
  while (n--) crc = kTable[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) uint32_t by_instruction(uint32_t crc, const unsigned char* p, size_t n) noexcept {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = uint32_t(c);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}
// __builtin_cpu_init first: this runs as a static initializer, possibly before libgcc's own.
const bool kHaveInstruction = [] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2") != 0;
}();
#endif

}  // namespace

uint32_t crc32c(uint32_t crc, std::string_view bytes) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  crc = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (kHaveInstruction) return ~by_instruction(crc, p, bytes.size());
#endif
  return ~by_table(crc, p, bytes.size());
}

}  // namespace tern::queue
