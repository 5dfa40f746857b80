// Candidate addresses for one attempt.
#include "delivery/candidates.hpp"

#include <algorithm>

namespace tern::delivery {

std::string Candidate::relay() const { return host + "[" + address.str() + "]:" + std::to_string(port); }

std::variant<std::vector<Candidate>, Outcome> candidates(std::vector<dns::MxHost> hosts, const dns::Self& self,
                                                         const CandidateRules& rules) {
  std::erase_if(hosts, [](const dns::MxHost& h) { return h.addresses.empty(); });
  if (!rules.route) {
    auto kept = dns::apply_self_rule(std::move(hosts), self);
    if (!kept) return Outcome::make(Fate::Failed, kept.error().status, kept.error().message);
    hosts = std::move(*kept);
  }
  std::vector<Candidate> out;
  for (auto& h : hosts) {
    std::stable_sort(h.addresses.begin(), h.addresses.end(), [&](const IpAddress& a, const IpAddress& b) {
      return rules.prefer_ipv6 ? (a.v6 && !b.v6) : (!a.v6 && b.v6);
    });
    for (const auto& a : h.addresses) {
      if (out.size() >= rules.max_addresses) break;
      if (rules.route && self.is_my_endpoint(Endpoint{a, rules.port})) continue;
      out.push_back({h.name, a, rules.port});
    }
  }
  if (out.empty())
    return Outcome::make(Fate::Failed, "5.4.6", "Route for " + rules.what + " points back to myself");
  return out;
}

}  // namespace tern::delivery
