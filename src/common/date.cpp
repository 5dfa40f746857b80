// RFC 5322 date formatting.
#include "common/date.hpp"

#include <ctime>

namespace tern {

std::string rfc5322_date(int64_t unix_us) {
  const time_t t = static_cast<time_t>(unix_us / 1000000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

std::string rfc3339(int64_t unix_us) {
  const time_t t = static_cast<time_t>(unix_us / 1000000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace tern
