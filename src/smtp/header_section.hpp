// Where a message's header section ends (RFC 5322 §2.1, §2.2). Pure.
#pragma once

#include <string_view>

namespace tern::smtp {

// The length of the header section at the start of `message`: up to and including the
// blank line that ends it; or, when there is none, the run of leading lines that are
// header fields (name ":" …, or folded continuations), so that a message without a blank
// line never counts as all headers. `complete` tells whether the end was seen inside
// `message` (false: more bytes could still belong to the header section).
size_t header_section_length(std::string_view message, bool& complete) noexcept;

}  // namespace tern::smtp
