// MTA-STS (RFC 8461), the pure part: the policy file parser (§3.2), the `_mta-sts` TXT
// record parser (§3.1) and MX pattern matching (§4.1). No I/O, so all of it is unit-tested
// and fuzzed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace tern::sts {

// §3.2: the largest max_age a policy may state (about one year).
inline constexpr int64_t kMaxAgeLimit = 31557600;
// §3.3: the policy body a sender reads at most; larger answers are refused whole.
inline constexpr size_t kMaxPolicySize = 64 * 1024;

enum class Mode { Enforce, Testing, None };
[[nodiscard]] const char* to_string(Mode m) noexcept;

struct Policy {
  Mode mode = Mode::None;
  std::vector<std::string> mx;  // patterns, lower case: "mx.example.com" or "*.example.com"
  int64_t max_age = 0;          // seconds
};

// Parses a policy file strictly: LF or CRLF line ends, keys followed by ':' and optional
// blanks, `version: STSv1`, `mode`, `max_age` and at least one `mx` (except under mode
// none), unknown keys ignored. Any other shape is an error whose message says what is wrong
// (for the log line: a malformed policy is treated as no policy).
Result<Policy> parse_policy(std::string_view text);

// What the `_mta-sts.DOMAIN` TXT answer says (§3.1): exactly one record starting with
// "v=STSv1" and syntactically valid gives its id; anything else is "no policy".
struct TxtVerdict {
  bool found = false;
  std::string id;      // when found
  std::string reason;  // when not: why (no record, several, malformed)
};
TxtVerdict parse_txt(const std::vector<std::string>& records);

// §4.1: does MX host `host` match one of the policy's patterns? A leading "*." matches
// exactly one extra leftmost label; everything else is an exact, case-insensitive match.
[[nodiscard]] bool mx_matches(const Policy& p, std::string_view host);
[[nodiscard]] bool pattern_matches(std::string_view pattern, std::string_view host);

}  // namespace tern::sts
