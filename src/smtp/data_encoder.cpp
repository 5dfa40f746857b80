// DATA encoding for the SMTP client.
#include "smtp/data_encoder.hpp"

#include <cstring>

namespace tern::smtp {

void DotEncoder::encode(std::string_view m, std::string& out) {
  out.reserve(out.size() + m.size() + m.size() / 64 + 8);
  size_t i = 0;
  if (after_cr_ && !m.empty() && m[0] == '\n') i = 1;  // the LF of a CRLF split across pieces
  after_cr_ = false;
  while (i < m.size()) {
    if (line_start_ && m[i] == '.') out += '.';
    // Copy the rest of the line in one go.
    const char* p = m.data() + i;
    const size_t left = m.size() - i;
    const void* cr = std::memchr(p, '\r', left);
    const void* lf = std::memchr(p, '\n', left);
    const char* end = p + left;
    if (cr && (!lf || cr < lf)) end = static_cast<const char*>(cr);
    else if (lf) end = static_cast<const char*>(lf);
    out.append(p, size_t(end - p));
    i += size_t(end - p);
    if (end != p) line_start_ = false;
    if (i == m.size()) break;
    out += "\r\n";
    line_start_ = true;
    if (m[i] == '\r') {
      if (i + 1 < m.size()) {
        if (m[i + 1] == '\n') ++i;
      } else {
        after_cr_ = true;
      }
    }
    ++i;
  }
}

void DotEncoder::finish(std::string& out) {
  if (!line_start_) out += "\r\n";
  out += ".\r\n";
  line_start_ = true;
  after_cr_ = false;
}

std::string encode_data(std::string_view m) {
  DotEncoder e;
  std::string out;
  e.encode(m, out);
  e.finish(out);
  return out;
}

}  // namespace tern::smtp
