// Pure MX logic: ordering by preference (RFC 5321 §5.1), null MX (RFC 7505), and the
// backup-MX rule that keeps tern from delivering to itself.
#pragma once

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/net.hpp"
#include "common/result.hpp"
#include "dns/resolver.hpp"

namespace tern::dns {

struct MxHost {
  uint16_t preference = 0;
  std::string name;
  std::vector<IpAddress> addresses;  // filled in after A/AAAA lookups
  bool secure = false;               // every address answer for it was DNSSEC-validated
};

// Lowest preference value first; hosts of equal preference in random order (the shuffle
// uses `rng`, so tests can fix it). A null MX ("." as the exchange) is a permanent failure
// 5.1.10; at most `max_hosts` hosts are kept.
Result<std::vector<MxHost>> order_mx(const std::vector<MxRecord>& records, std::mt19937_64& rng,
                                     size_t max_hosts);

// Who tern is, for the self rule.
struct Self {
  std::string hostname;             // canonical
  std::vector<IpAddress> addresses; // listener addresses (wildcards expanded) + external
  std::vector<Endpoint> listeners;  // exact listening endpoints (wildcards expanded)
  [[nodiscard]] bool is_me(const MxHost& h) const;
  // For a configured route: only this exact address and port is me (a smarthost on the
  // same machine but another port, e.g. a content filter, is not a loop).
  [[nodiscard]] bool is_my_endpoint(const Endpoint& e) const;
};

// RFC 5321 §5.1: when tern is one of the MX hosts, it drops itself and every host with an
// equal or higher preference value. If tern is the most preferred, nothing is left: that is
// a configuration error and a permanent failure 5.4.6 (mail loops back to myself).
Result<std::vector<MxHost>> apply_self_rule(std::vector<MxHost> ordered, const Self& self);

}  // namespace tern::dns
