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

}  // namespace tern
