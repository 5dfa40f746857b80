// One cached MTA-STS policy (RFC 8461 §5.1) as a value: its file format (readable with cat,
// one file per domain) and the pure decisions of when a cached policy is used, when a new
// one is fetched and when the domain has no policy. Times come from the caller's Clock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "sts/policy.hpp"

namespace tern::sts {

struct Entry {
  std::string domain;  // canonical: lower case, no trailing dot
  std::string id;      // the TXT record's id the policy was fetched under
  int64_t fetched_us = 0;
  std::string text;    // the policy file as served (parsed again when the cache is loaded)
  Policy policy;

  [[nodiscard]] int64_t expires_us() const noexcept { return fetched_us + policy.max_age * 1000000; }
  [[nodiscard]] bool valid_at(int64_t now_us) const noexcept { return now_us < expires_us(); }
};

// "tern-mta-sts 1", then "domain: ", "id: ", "fetched: " (Unix seconds) lines, a blank
// line, and the policy text exactly as served.
std::string encode_entry(const Entry& e);
Result<Entry> decode_entry(std::string_view file);

// The cache file's name for `domain`, or "" when the name has characters other than
// letters, digits, '-' and '.' (such a domain's policy is kept in memory only).
std::string file_name_for(std::string_view domain);

// What the `_mta-sts` TXT lookup said.
enum class TxtState { Found, Absent, Failed };

// When a refetch is due before expiry, and how long a failed fetch is not retried.
struct Timing {
  // Refetch in the background this long before expiry (at most the last quarter of max_age).
  int64_t refresh_before_us = 86400LL * 1000000;
  int64_t retry_after_us = 300LL * 1000000;       // after a failed fetch, no new one for this long
};

enum class Action {
  Use,    // apply `cached`
  Fetch,  // fetch now and wait; on failure fall back to `cached` if still valid
  None,   // the domain has no policy
};

struct Decision {
  Action action = Action::None;
  bool refresh = false;  // Use, and also fetch in the background (expiry is near)
};

// RFC 8461 §5.1 and §3.3: a valid cached policy whose id matches the TXT record is used
// as is; a new id or an expired policy means a fetch; a TXT record that is absent or
// cannot be looked up leaves a valid cached policy in force (an attacker could remove it).
// `last_failure_us`: when the latest fetch for this domain failed (0: never), so that a
// broken policy host is not asked again for every message.
Decision decide(const Entry* cached, TxtState txt, std::string_view txt_id, int64_t now_us,
                int64_t last_failure_us, const Timing& t);

// The periodic sweep (§5.1 "proactively"): a cached policy within its refresh window is
// fetched again ahead of expiry when the domain has had mail since the policy was fetched
// (a domain no longer written to is left to expire), unless a fetch just failed.
[[nodiscard]] bool refresh_due(const Entry& e, int64_t last_used_us, int64_t now_us, int64_t last_failure_us,
                               const Timing& t);

// After a fetch: the fresh entry if it worked, else the cached one while it is valid.
const Entry* after_fetch(const Entry* fresh, const Entry* cached, int64_t now_us);

}  // namespace tern::sts
