// JSON string literals for the little JSON tern writes (ternctl --json output): escaping
// per RFC 8259 §7, invalid UTF-8 replaced by U+FFFD so the output always parses. Written by
// hand: tern only ever writes JSON, a few flat objects, which does not earn a dependency.
#pragma once

#include <string>
#include <string_view>

namespace tern {

// `s` as a quoted JSON string.
std::string json_string(std::string_view s);

}  // namespace tern
