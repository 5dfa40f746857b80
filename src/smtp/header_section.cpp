// Header section boundary.
#include "smtp/header_section.hpp"

namespace tern::smtp {

namespace {

// RFC 5322 §3.6.8: field-name = 1*ftext, ftext = %d33-57 / %d59-126.
bool is_field_line(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && line[i] >= 33 && line[i] <= 126 && line[i] != ':') ++i;
  return i > 0 && i < line.size() && line[i] == ':';
}

}  // namespace

size_t header_section_length(std::string_view m, bool& complete) noexcept {
  complete = false;
  size_t pos = 0;
  bool any = false;
  while (pos < m.size()) {
    const size_t nl = m.find('\n', pos);
    if (nl == std::string_view::npos) return pos;  // an unfinished line: not decided yet
    std::string_view line = m.substr(pos, nl - pos);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty()) {  // the blank line ends the section and belongs to it
      complete = true;
      return nl + 1;
    }
    const bool folded = any && (line[0] == ' ' || line[0] == '\t');
    if (!folded && !is_field_line(line)) {
      complete = true;  // body text without a separating blank line
      return pos;
    }
    any = true;
    pos = nl + 1;
  }
  return pos;
}

}  // namespace tern::smtp
