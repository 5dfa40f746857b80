// Client-side reply parsing.
#include "smtp/reply_parser.hpp"

#include "common/log_escape.hpp"

namespace tern::smtp {

namespace {
constexpr size_t kMaxReplyLine = 4096;  // RFC 5321 §4.5.3.1.5 says 512; servers exceed it
constexpr size_t kMaxReplyLines = 200;

bool digit(char c) { return c >= '0' && c <= '9'; }
}  // namespace

std::string Reply::str() const {
  std::string s = std::to_string(code);
  if (!enhanced.empty()) s += " " + enhanced;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    s += i == 0 ? " " : " / ";
    s += lines[i];
  }
  return s;
}

std::string find_enhanced(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view tok = text.substr(pos, end - pos);
    pos = end + 1;
    if (tok.size() < 5 || tok.size() > 11 || (tok[0] != '2' && tok[0] != '4' && tok[0] != '5') || tok[1] != '.')
      continue;
    size_t dots = 0;
    bool digits = true;
    for (char c : tok) {
      if (c == '.') ++dots;
      else if (!digit(c)) digits = false;
    }
    if (digits && dots == 2 && tok.back() != '.' && tok.find("..") == std::string_view::npos) return std::string(tok);
  }
  return {};
}

std::pair<std::string, std::string_view> split_enhanced(int code, std::string_view text) {
  // class.subject.detail, RFC 3463 §2: class is 2, 4 or 5 and must match the reply code.
  size_t i = 0;
  if (text.empty() || text[0] - '0' != code / 100) return {"", text};
  ++i;
  for (int part = 0; part < 2; ++part) {
    if (i >= text.size() || text[i] != '.') return {"", text};
    ++i;
    size_t start = i;
    while (i < text.size() && digit(text[i]) && i - start < 3) ++i;
    if (i == start) return {"", text};
  }
  if (i < text.size() && text[i] != ' ') return {"", text};
  std::string code_text(text.substr(0, i));
  text.remove_prefix(i);
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  return {code_text, text};
}

Status ReplyParser::feed(std::string_view bytes, std::vector<Reply>& out) {
  buf_.append(bytes);
  size_t pos = 0;
  while (true) {
    const size_t nl = buf_.find('\n', pos);
    if (nl == std::string::npos) {
      if (buf_.size() - pos > kMaxReplyLine) return Error::perm("reply line too long");
      break;
    }
    std::string_view line(buf_.data() + pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // The same cap for a line that arrived whole in one read as for one still arriving.
    if (line.size() > kMaxReplyLine) return Error::perm("reply line too long");
    if (line.size() < 3 || !digit(line[0]) || !digit(line[1]) || !digit(line[2]) || line[0] < '2' ||
        line[0] > '5' || (line.size() > 3 && line[3] != ' ' && line[3] != '-'))
      // The text ends up in logs and queue records: escaped (it is the peer's).
      return Error::perm("malformed reply line: " + log_safe(line.substr(0, 80)));
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (in_reply_ && code != partial_.code) return Error::perm("reply code changed inside a multi-line reply");
    const bool more = line.size() > 3 && line[3] == '-';
    std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
    if (!in_reply_) {
      partial_ = Reply{};
      partial_.code = code;
      auto [enh, rest] = split_enhanced(code, text);
      partial_.enhanced = enh;
      text = rest;
      in_reply_ = true;
    } else if (!partial_.enhanced.empty()) {
      text = split_enhanced(code, text).second;
    }
    if (partial_.lines.size() >= kMaxReplyLines) return Error::perm("reply has too many lines");
    partial_.lines.emplace_back(text);
    if (!more) {
      out.push_back(std::move(partial_));
      partial_ = Reply{};
      in_reply_ = false;
    }
  }
  buf_.erase(0, pos);
  return ok_status();
}

}  // namespace tern::smtp
