// What the server needs to know about a message's header section (RFC 5322 §2.2): loop
// detection and the headers it may add. Pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tern::smtp {

struct HeaderSummary {
  size_t received = 0;  // number of Received: fields
  bool has_message_id = false;
  bool has_date = false;
};

// Scans a header block (everything before the first empty line).
HeaderSummary scan_headers(std::string_view block);

// Length of the header block at the start of `content`, including the empty line that ends
// it, or npos if the block has not ended yet.
size_t header_block_length(std::string_view content);

// header_block_length() for a buffer that grows by appends (DATA arriving read by read):
// each call looks only at what was appended since the last one, plus the 3 octets before it
// that could start the "\r\n\r\n", so a large header section costs linear time, not quadratic.
class HeaderEnd {
 public:
  // `content` is the whole buffer so far; earlier calls saw a prefix of it.
  size_t find(std::string_view content);
  void reset() noexcept { scanned_ = 0, examined_ = 0; }
  // Octets examined since the last reset (what the linear bound is about; for tests).
  [[nodiscard]] size_t examined() const noexcept { return examined_; }

 private:
  size_t scanned_ = 0;
  size_t examined_ = 0;
};

}  // namespace tern::smtp
