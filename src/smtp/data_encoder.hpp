// The sending half of the DATA dot codec (RFC 5321 §4.5.2): dot-stuffing, CRLF line ends,
// and the terminating line. Pure. Stateful, so a message can be encoded chunk by chunk as
// it is streamed from the queue file; the decoder (data_decoder) is its mirror image.
#pragma once

#include <string>
#include <string_view>

namespace tern::smtp {

class DotEncoder {
 public:
  // Appends the encoding of the next piece of the message to `out`: every line ends in
  // CRLF (a bare CR or bare LF becomes CRLF, so no lenient next hop can see an early end
  // of data), and a line starting with "." gets a second one. A CRLF split across two
  // pieces is recognised.
  void encode(std::string_view piece, std::string& out);
  // Appends the end of the data: a CRLF if the last line was unfinished, then ".\r\n".
  void finish(std::string& out);

 private:
  bool line_start_ = true;
  bool after_cr_ = false;  // the previous piece ended in CR (its CRLF is already out)
};

// The whole message at once (tests and small notices).
std::string encode_data(std::string_view message);

}  // namespace tern::smtp
