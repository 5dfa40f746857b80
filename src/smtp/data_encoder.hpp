// The sending half of the DATA dot codec (RFC 5321 §4.5.2): dot-stuffing, CRLF line ends,
// and the terminating line. Pure.
#pragma once

#include <string>
#include <string_view>

namespace tern::smtp {

// Returns the bytes to send after a 354: every line ends in CRLF (a bare CR or bare LF in
// the input becomes CRLF, so no lenient next hop can see an early end of data), a line
// starting with "." gets a second one, and ".\r\n" ends it.
std::string encode_data(std::string_view message);

}  // namespace tern::smtp
