// DATA encoding for the SMTP client.
#include "smtp/data_encoder.hpp"

namespace tern::smtp {

std::string encode_data(std::string_view m) {
  std::string out;
  out.reserve(m.size() + m.size() / 64 + 8);
  bool line_start = true;
  for (size_t i = 0; i < m.size(); ++i) {
    const char c = m[i];
    if (c == '\r' || c == '\n') {
      out += "\r\n";
      if (c == '\r' && i + 1 < m.size() && m[i + 1] == '\n') ++i;
      line_start = true;
      continue;
    }
    if (line_start && c == '.') out += '.';
    out += c;
    line_start = false;
  }
  if (!line_start) out += "\r\n";
  out += ".\r\n";
  return out;
}

}  // namespace tern::smtp
