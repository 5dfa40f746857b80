// RFC 5322 date formatting.
#include "common/date.hpp"

#include <ctime>

namespace tern {

namespace {
std::string utc(int64_t unix_us, const char* format) {
  const time_t t = static_cast<time_t>(unix_us / 1000000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, format, &tm);
  return buf;
}
}  // namespace

std::string rfc5322_date(int64_t unix_us) { return utc(unix_us, "%a, %d %b %Y %H:%M:%S +0000"); }

std::string rfc3339(int64_t unix_us) { return utc(unix_us, "%Y-%m-%dT%H:%M:%SZ"); }

}  // namespace tern
