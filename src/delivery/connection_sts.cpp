// The connection's MTA-STS steps (RFC 8461 §4, §5): asking for the domain's policy before
// the MX lookup, keeping only the MX hosts an enforce policy allows, logging what a testing
// policy would have refused, and marking each outcome's log line with sts=MODE. The rules
// themselves are in tls_policy (pure); the policy comes from sts::Source.
#include <spdlog/spdlog.h>

#include "common/log_escape.hpp"
#include "delivery/agent.hpp"
#include "delivery/connection.hpp"

namespace tern::delivery {

void Connection::lookup_sts() {
  sts_looked_up_ = true;
  auto alive = alive_;
  agent_.sts_->policy_for(dest_.domain, [this, alive](sts::Applied a) {
    if (!*alive) return;
    sts_ = sts_plan(a);
    resolve();
  });
}

// Under enforce an MX host that matches no pattern is never used (§4.1); when none is
// left the mail waits (4.7.0), since a plaintext or unlisted host is exactly what the
// policy forbids. Under testing the mismatch is only logged.
bool Connection::sts_hosts(std::vector<dns::MxHost>& hosts) {
  if (!sts_.active()) return true;
  std::vector<std::string> mismatched;
  hosts = sts_filter_hosts(std::move(hosts), sts_, mismatched);
  const char* mode = sts::to_string(sts_.mode);
  for (const auto& h : mismatched) {
    if (sts_.mode == sts::Mode::Enforce)
      spdlog::info("mta-sts: domain={} policy id={} enforce: MX host {} matches no mx pattern; not used",
                   dest_.domain, sts_.id, log_safe(h));
    else
      spdlog::warn("mta-sts: testing policy failure domain={} id={} host={}: matches no mx pattern", dest_.domain,
                   sts_.id, log_safe(h));
  }
  if (!hosts.empty()) return true;
  std::string names;
  for (const auto& h : mismatched) names += (names.empty() ? "" : ", ") + h;
  fail_all_jobs(Outcome::make(Fate::Deferred, "4.7.0",
                              "MTA-STS policy (" + std::string(mode) + ", id " + sts_.id + ") of " + dest_.domain +
                                  " allows none of its MX hosts (" + names + ")"));
  return false;
}

// Testing (§5): the mail went as under `may`; what enforce would have refused is logged,
// once per session, in a line an operator can grep for.
void Connection::sts_check_tls() {
  if (sts_.mode != sts::Mode::Testing || sts_checked_ || current_ >= cands_.size()) return;
  sts_checked_ = true;
  std::string why;
  if (!tls_ || !tls_->done) why = "no TLS";
  else if (!tls_->verified) why = "certificate not valid for the MX host: " + tls_->verify_error;
  if (why.empty()) return;
  spdlog::warn("mta-sts: testing policy failure domain={} id={} host={}: {} (delivered anyway)", dest_.domain,
               sts_.id, cands_[current_].host, log_safe(why));
}

// Every outcome's log line says the policy applied (tls=... sts=enforce).
void Connection::sts_mark(std::vector<Outcome>& outs) const {
  if (!sts_.active()) return;
  const std::string tag = std::string(" sts=") + sts::to_string(sts_.mode);
  for (auto& o : outs) o.tls = (o.tls.empty() ? "tls=none" : o.tls) + tag;
}

}  // namespace tern::delivery
