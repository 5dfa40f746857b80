// Which addresses a delivery attempt tries, in order: the pure step between the DNS
// answers and the connections (self rule, address family preference, limits).
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "common/net.hpp"
#include "common/outcome.hpp"
#include "dns/mx.hpp"

namespace tern::delivery {

struct Candidate {
  std::string host;
  IpAddress address;
  uint16_t port = 0;
  [[nodiscard]] std::string relay() const;  // "host[addr]:port"
};

struct CandidateRules {
  bool route = false;        // a configured next hop: only its exact endpoint can be me
  uint16_t port = 25;
  bool prefer_ipv6 = false;  // within a host, which family goes first
  size_t max_addresses = 20;
  std::string what;          // the destination, for the refusal text
};

// `hosts`: in preference order (dns::order_mx), with their addresses resolved; hosts
// without addresses are skipped. For MX destinations the self rule (dns::apply_self_rule)
// applies; for routes only tern's exact listening endpoints are dropped. Returns the
// ordered candidates, or the Outcome for every recipient when none is left (5.4.6).
std::variant<std::vector<Candidate>, Outcome> candidates(std::vector<dns::MxHost> hosts, const dns::Self& self,
                                                         const CandidateRules& rules);

}  // namespace tern::delivery
