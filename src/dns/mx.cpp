// MX ordering and the self rule.
#include "dns/mx.hpp"

#include <algorithm>

#include "common/strings.hpp"

namespace tern::dns {

Result<std::vector<MxHost>> order_mx(const std::vector<MxRecord>& records, std::mt19937_64& rng,
                                     size_t max_hosts) {
  std::vector<MxHost> hosts;
  for (const auto& r : records) {
    // RFC 7505 §3: "." as the exchange means the domain accepts no mail at all.
    if (r.host.empty() || r.host == ".")
      return Error::perm("5.1.10", "Domain does not accept mail (null MX, RFC 7505)");
    hosts.push_back({r.preference, canonical_domain(r.host), {}});
  }
  // Shuffle first, then a stable sort by preference: equal preferences keep random order.
  std::shuffle(hosts.begin(), hosts.end(), rng);
  std::stable_sort(hosts.begin(), hosts.end(),
                   [](const MxHost& a, const MxHost& b) { return a.preference < b.preference; });
  // The same host listed twice keeps its best position only.
  std::vector<MxHost> unique;
  for (auto& h : hosts) {
    bool seen = false;
    for (const auto& u : unique) seen |= u.name == h.name;
    if (!seen) unique.push_back(std::move(h));
  }
  if (unique.size() > max_hosts) unique.resize(max_hosts);
  return unique;
}

bool Self::is_me(const MxHost& h) const {
  if (canonical_domain(h.name) == hostname) return true;
  for (const auto& a : h.addresses)
    for (const auto& mine : addresses)
      if (a.unmapped() == mine.unmapped()) return true;
  return false;
}

bool Self::is_my_endpoint(const Endpoint& e) const {
  for (const auto& l : listeners)
    if (l.port == e.port && l.address.unmapped() == e.address.unmapped()) return true;
  return false;
}

Result<std::vector<MxHost>> apply_self_rule(std::vector<MxHost> ordered, const Self& self) {
  for (size_t i = 0; i < ordered.size(); ++i) {
    if (!self.is_me(ordered[i])) continue;
    const uint16_t mine = ordered[i].preference;
    std::vector<MxHost> better;
    for (auto& h : ordered)
      if (h.preference < mine) better.push_back(std::move(h));
    if (better.empty())
      return Error::perm("5.4.6", "Mail for this domain loops back to myself (" + ordered[i].name +
                         " is me and its most preferred MX)");
    return better;
  }
  return ordered;
}

}  // namespace tern::dns
