// The MTA-STS cache file codec and the use/fetch decisions (pure).
#include "sts/cache_entry.hpp"

#include <algorithm>
#include <charconv>

namespace tern::sts {

namespace {
constexpr std::string_view kMagic = "tern-mta-sts 1";
}

std::string encode_entry(const Entry& e) {
  std::string out(kMagic);
  out += "\ndomain: " + e.domain + "\nid: " + e.id + "\nfetched: " + std::to_string(e.fetched_us / 1000000) +
         "\n\n";
  out += e.text;
  return out;
}

Result<Entry> decode_entry(std::string_view file) {
  Entry e;
  const size_t end = file.find("\n\n");
  if (end == std::string_view::npos) return Error::perm("no blank line after the header");
  std::string_view head = file.substr(0, end + 1);
  e.text = std::string(file.substr(end + 2));
  bool magic = false, have_domain = false, have_id = false, have_fetched = false;
  while (!head.empty()) {
    const size_t lf = head.find('\n');
    const std::string_view line = head.substr(0, lf);
    head.remove_prefix(lf + 1);
    if (!magic) {
      if (line != kMagic) return Error::perm("not a tern MTA-STS cache file");
      magic = true;
      continue;
    }
    const size_t colon = line.find(": ");
    if (colon == std::string_view::npos) return Error::perm("malformed header line");
    const std::string_view key = line.substr(0, colon), value = line.substr(colon + 2);
    if (key == "domain") {
      e.domain = std::string(value);
      have_domain = !value.empty();
    } else if (key == "id") {
      e.id = std::string(value);
      have_id = !value.empty();
    } else if (key == "fetched") {
      int64_t s = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), s);
      if (ec != std::errc() || p != value.data() + value.size() || s < 0 || s > (int64_t(1) << 40))
        return Error::perm("bad fetched time");
      e.fetched_us = s * 1000000;
      have_fetched = true;
    }
    // Other header keys (from a later tern) are ignored.
  }
  if (!magic || !have_domain || !have_id || !have_fetched) return Error::perm("incomplete header");
  auto p = parse_policy(e.text);
  if (!p) return Error::perm("cached policy: " + p.error().message);
  e.policy = std::move(*p);
  return e;
}

std::string file_name_for(std::string_view domain) {
  if (domain.empty() || domain.front() == '.' || domain.size() > 253) return {};
  for (char c : domain)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return {};
  return std::string(domain);
}

namespace {
bool in_refresh_window(const Entry& e, int64_t now_us, const Timing& t) {
  // A short-lived policy is refreshed in its last quarter, not on every use.
  const int64_t window = std::min(t.refresh_before_us, e.policy.max_age * 1000000 / 4);
  return now_us >= e.expires_us() - window;
}
bool failed_recently(int64_t last_failure_us, int64_t now_us, const Timing& t) {
  return last_failure_us != 0 && now_us - last_failure_us < t.retry_after_us;
}
}  // namespace

bool refresh_due(const Entry& e, int64_t last_used_us, int64_t now_us, int64_t last_failure_us, const Timing& t) {
  return e.valid_at(now_us) && last_used_us >= e.fetched_us && in_refresh_window(e, now_us, t) &&
         !failed_recently(last_failure_us, now_us, t);
}

Decision decide(const Entry* cached, TxtState txt, std::string_view txt_id, int64_t now_us,
                int64_t last_failure_us, const Timing& t) {
  const bool valid = cached && cached->valid_at(now_us);
  const bool recently_failed = failed_recently(last_failure_us, now_us, t);
  if (txt != TxtState::Found) return {valid ? Action::Use : Action::None, false};
  if (valid && cached->id == txt_id) {
    // §5.1: a sender should refresh a policy before it expires, so that one in use never
    // lapses while the domain still publishes it.
    return {Action::Use, in_refresh_window(*cached, now_us, t) && !recently_failed};
  }
  // A new id (or no usable cached policy): fetch, unless a fetch just failed, in which case
  // the state stays as it is until the retry interval has passed.
  if (recently_failed) return {valid ? Action::Use : Action::None, false};
  return {Action::Fetch, false};
}

const Entry* after_fetch(const Entry* fresh, const Entry* cached, int64_t now_us) {
  if (fresh) return fresh;
  return cached && cached->valid_at(now_us) ? cached : nullptr;
}

}  // namespace tern::sts
