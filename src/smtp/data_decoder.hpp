// The DATA dot codec (RFC 5321 §4.1.1.4, §4.5.2): finds the end of data and removes dot
// stuffing. Only CR LF "." CR LF ends the data; a bare CR or bare LF never does and never
// starts a line, so no client can smuggle a second message past a lenient next hop
// (CVE-2023-51764 and its siblings). Without dot stuffing it decodes BDAT chunks (RFC 3030),
// whose end the octet count gives, with the same bare CR/LF and long-line checks: stored
// as is, a bare LF would later be relayed inside DATA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tern::smtp {

class DataDecoder {
 public:
  struct Options {
    bool normalize_bare_newlines = false;  // store a bare CR/LF as CRLF (else only flag it)
    size_t max_line_length = 1000;         // octets including CRLF (RFC 5321 §4.5.3.1.6)
    bool dot_stuffed = true;               // false for BDAT: no dots, no terminator line
  };
  struct Step {
    size_t consumed = 0;  // raw bytes used from the input
    bool done = false;    // the terminating line was consumed
  };

  explicit DataDecoder(Options o) : opt_(o) {}

  // Decodes raw input, appending message content to `out`. Stops right after the end of data.
  Step feed(std::string_view in, std::string& out);
  // BDAT LAST: the content ends here. A CR left pending at the very end is a bare CR and the
  // last line (if it has no CRLF) is measured too.
  void finish(std::string& out);

  [[nodiscard]] bool saw_bare_newline() const noexcept { return bare_; }
  [[nodiscard]] bool saw_long_line() const noexcept { return long_line_; }

 private:
  enum class State { LineStart, Dot, DotCr, Mid, Cr };
  void bare(std::string& out);
  void end_line();

  Options opt_;
  State state_ = State::LineStart;
  size_t line_len_ = 0;
  bool bare_ = false;
  bool long_line_ = false;
};

}  // namespace tern::smtp
