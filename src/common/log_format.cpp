// JSON and journal log formatting.
#include "common/log_format.hpp"

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>

#include <ctime>

#include "common/json.hpp"

namespace tern {

namespace {

bool key_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; }

// The end of a value starting at `i`: a bracketed or quoted value runs to its closing
// character, anything else to the next space.
size_t value_end(std::string_view s, size_t i) {
  if (i < s.size()) {
    const char open = s[i];
    const char close = open == '<' ? '>' : open == '[' ? ']' : open == '"' ? '"' : open == '(' ? ')' : 0;
    if (close) {
      const size_t e = s.find(close, i + 1);
      if (e != std::string_view::npos && (e + 1 == s.size() || s[e + 1] == ' ' || close != '"')) {
        size_t end = e + 1;
        while (end < s.size() && s[end] != ' ') ++end;  // "[addr]:port"
        return end;
      }
    }
  }
  const size_t sp = s.find(' ', i);
  return sp == std::string_view::npos ? s.size() : sp;
}

}  // namespace

std::string json_log_line(std::string_view ts, std::string_view level, std::string_view message) {
  std::string out = "{";
  if (!ts.empty()) out += "\"ts\":" + json_string(ts) + ",";
  out += "\"level\":" + json_string(level);
  std::string_view rest = message;
  const size_t colon = message.find(": ");
  if (colon != std::string_view::npos && colon > 0 && colon < 24) {
    bool word = true;
    for (char c : message.substr(0, colon)) word = word && key_char(c);
    if (word) {
      out += ",\"component\":" + json_string(message.substr(0, colon));
      rest = message.substr(colon + 2);
    }
  }
  // key=value tokens, wherever they are in the line; a key seen twice keeps the first.
  std::string seen = ",";
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    size_t k = i;
    while (k < rest.size() && key_char(rest[k])) ++k;
    if (k > i && k < rest.size() && rest[k] == '=') {
      const std::string key(rest.substr(i, k - i));
      const size_t end = value_end(rest, k + 1);
      std::string_view value = rest.substr(k + 1, end - k - 1);
      if (value.size() >= 2 && ((value.front() == '<' && value.back() == '>') || (value.front() == '"' && value.back() == '"')))
        value = value.substr(1, value.size() - 2);
      if (seen.find("," + key + ",") == std::string::npos && key != "ts" && key != "level" && key != "component" &&
          key != "msg") {
        out += "," + json_string(key) + ":" + json_string(value);
        seen += key + ",";
      }
      i = end;
      continue;
    }
    const size_t sp = rest.find(' ', i);
    i = sp == std::string_view::npos ? rest.size() : sp;
  }
  out += ",\"msg\":" + json_string(rest) + "}";
  return out;
}

namespace {

// journald reads "<N>" at the start of a line as the syslog priority (sd-daemon(3)).
const char* journal_prefix(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::critical: return "<2>";
    case spdlog::level::err: return "<3>";
    case spdlog::level::warn: return "<4>";
    case spdlog::level::info: return "<6>";
    default: return "<7>";
  }
}

class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(bool journal) : journal_(journal) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string ts;
    if (!journal_) {
      const auto t = std::chrono::system_clock::to_time_t(msg.time);
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
      struct tm tm {};
      gmtime_r(&t, &tm);
      char buf[40];
      std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
      char full[48];
      std::snprintf(full, sizeof full, "%s.%03dZ", buf, int(ms));
      ts = full;
    }
    const auto level = spdlog::level::to_string_view(msg.level);
    std::string line = journal_ ? journal_prefix(msg.level) : "";
    line += json_log_line(ts, std::string_view(level.data(), level.size()),
                          std::string_view(msg.payload.data(), msg.payload.size()));
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(journal_); }

 private:
  bool journal_;
};

// Text for the journal: "<6>delivery: ..." (journald adds the time).
class JournalTextFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string_view p = journal_prefix(msg.level);
    dest.append(p.data(), p.data() + p.size());
    dest.append(msg.payload.data(), msg.payload.data() + msg.payload.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JournalTextFormatter>(); }
};

}  // namespace

std::unique_ptr<spdlog::formatter> make_log_formatter(LogFormat format, bool journal) {
  if (format == LogFormat::Json) return std::make_unique<JsonFormatter>(journal);
  if (journal) return std::make_unique<JournalTextFormatter>();
  return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%e %l %v");
}

}  // namespace tern
