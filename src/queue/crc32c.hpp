// CRC-32C (Castagnoli, the iSCSI/ext4 checksum): what makes a queue file's closing record
// self-validating (queue-format.md, "The closing record"). Pure, no I/O.
#pragma once

#include <cstdint>
#include <string_view>

namespace tern::queue {

// Streaming: crc32c(crc32c(0, a), b) == crc32c(0, a + b); crc32c(0, "123456789") == 0xE3069283.
// Uses the CPU's crc32 instruction where there is one (x86-64 with SSE 4.2).
uint32_t crc32c(uint32_t crc, std::string_view bytes) noexcept;

}  // namespace tern::queue
