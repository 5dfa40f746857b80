// Header-section scanning.
#include "smtp/headers.hpp"

#include "common/strings.hpp"

namespace tern::smtp {

HeaderSummary scan_headers(std::string_view block) {
  HeaderSummary s;
  size_t pos = 0;
  while (pos < block.size()) {
    size_t nl = block.find('\n', pos);
    std::string_view line = block.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? block.size() : nl + 1;
    if (line.empty() || line.front() == ' ' || line.front() == '\t') continue;  // folded
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = trim(line.substr(0, colon));
    if (iequals(name, "Received")) ++s.received;
    else if (iequals(name, "Message-ID")) s.has_message_id = true;
    else if (iequals(name, "Date")) s.has_date = true;
  }
  return s;
}

size_t header_block_length(std::string_view content) {
  if (content.starts_with("\r\n")) return 2;  // no header fields at all
  size_t p = content.find("\r\n\r\n");
  return p == std::string_view::npos ? std::string_view::npos : p + 4;
}

size_t HeaderEnd::find(std::string_view content) {
  if (content.starts_with("\r\n")) return 2;  // no header fields at all
  const size_t from = scanned_ >= 3 ? scanned_ - 3 : 0;
  if (content.size() > from) examined_ += content.size() - from;
  const size_t p = content.find("\r\n\r\n", from);
  if (p == std::string_view::npos) {
    scanned_ = content.size();
    return std::string_view::npos;
  }
  return p + 4;
}

}  // namespace tern::smtp
