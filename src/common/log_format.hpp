// Log line shapes. tern's log lines read "component: key=value ... free text" (STYLE habit
// 8); these turn one into a JSON object for log_format: json, and pick the line prefix for
// the journal. Pure; the spdlog formatter that uses them is in log_format.cpp.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class formatter;
}

namespace tern {

// {"ts":"...","level":"info","component":"delivery","id":"...","to":"...","msg":"..."}:
// the component is the word before the first ": ", each key=value token becomes a field
// (values may be <...>, [...] or "..." with spaces inside), the whole text stays in "msg".
std::string json_log_line(std::string_view ts, std::string_view level, std::string_view message);

enum class LogFormat { Text, Json };
// The formatter for the chosen format. `journal`: stderr goes to journald (JOURNAL_STREAM
// is set), which stamps the time itself and reads "<N>" syslog priority prefixes.
std::unique_ptr<spdlog::formatter> make_log_formatter(LogFormat format, bool journal);

}  // namespace tern
