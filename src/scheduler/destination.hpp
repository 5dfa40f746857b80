// Where a recipient's mail goes: the MX set of its domain, or a configured route (one
// next hop shared by every domain routed there). Pure.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "config/config.hpp"

namespace tern::scheduler {

struct Destination {
  std::string key;     // "mx:domain" or "route:host:port"
  bool route = false;
  std::string domain;  // the recipient domain (for routes: the first one seen)
  std::string host;    // for routes: a name or an IP literal
  uint16_t port = 0;   // for routes; 0 = delivery.port
};

// The destination of `domain` (already canonical): its route, the "*" route, or its MX.
Destination destination_for(const std::string& domain, const std::map<std::string, config::Route>& routes,
                            uint16_t default_port);

// The canonical domain of an address ("" when it has none).
std::string domain_of(const std::string& address);

}  // namespace tern::scheduler
