// Notice policy.
#include "bounce/notices.hpp"

#include "smtp/dsn_params.hpp"

namespace tern::bounce {

bool owes_failure_notice(const Policy& p, const queue::Envelope& env, const queue::Recipient& r) {
  if (env.sender.empty())
    return p.double_bounce_to_postmaster && r.address != p.postmaster && r.original != "postmaster";
  return smtp::rcpt_dsn(r.params).notify.wants_failure();
}

std::vector<size_t> delay_warning_due(const Policy& p, const queue::Envelope& env,
                                      const std::vector<size_t>& deferred, int64_t now_us) {
  std::vector<size_t> idx;
  if (p.delay_warning_us == 0 || env.sender.empty() || env.delay_warned_us) return idx;
  if (now_us - env.arrival_us < p.delay_warning_us) return idx;
  for (size_t i : deferred)
    if (smtp::rcpt_dsn(env.recipients[i].params).notify.wants_delay()) idx.push_back(i);
  return idx;
}

std::vector<size_t> relayed_notice_due(const queue::Envelope& env, const std::vector<size_t>& delivered) {
  std::vector<size_t> idx;
  if (env.sender.empty()) return idx;
  for (size_t i : delivered)
    if (smtp::rcpt_dsn(env.recipients[i].params).notify.wants_success()) idx.push_back(i);
  return idx;
}

}  // namespace tern::bounce
