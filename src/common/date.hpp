// RFC 5322 §3.3 date-time text, used by the Received:, Date: and (later) DSN headers.
#pragma once

#include <cstdint>
#include <string>

namespace tern {

// "Wed, 25 Nov 2026 10:28:58 +0000" (always UTC: deterministic and unambiguous).
std::string rfc5322_date(int64_t unix_us);
// "2026-11-25T10:28:58Z" (RFC 3339, UTC, whole seconds), for JSON output.
std::string rfc3339(int64_t unix_us);

}  // namespace tern
