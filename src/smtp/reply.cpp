// Reply formatting.
#include "smtp/reply.hpp"

namespace tern::smtp {

std::string reply(int code, std::string_view enhanced, std::string_view text) {
  std::string out = std::to_string(code);
  out += ' ';
  if (!enhanced.empty()) {
    out += enhanced;
    out += ' ';
  }
  out += text;
  out += "\r\n";
  return out;
}

std::string reply_lines(int code, const std::vector<std::string>& lines) {
  std::string out;
  const std::string c = std::to_string(code);
  for (size_t i = 0; i < lines.size(); ++i) {
    out += c;
    out += i + 1 < lines.size() ? '-' : ' ';
    out += lines[i];
    out += "\r\n";
  }
  return out;
}

}  // namespace tern::smtp
