// What the server needs to know about a message's header section (RFC 5322 §2.2): loop
// detection and the headers it may add. Pure.
#pragma once

#include <cstddef>
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

}  // namespace tern::smtp
