// Destinations of recipient domains.
#include "scheduler/destination.hpp"

#include "common/strings.hpp"

namespace tern::scheduler {

Destination destination_for(const std::string& domain, const std::map<std::string, config::Route>& routes,
                            uint16_t default_port) {
  auto it = routes.find(domain);
  if (it == routes.end()) it = routes.find("*");
  Destination d;
  d.domain = domain;
  if (it != routes.end()) {
    d.route = true;
    d.host = it->second.host;
    d.port = it->second.port ? it->second.port : default_port;
    d.key = "route:" + d.host + ":" + std::to_string(d.port);
    return d;
  }
  d.port = default_port;
  d.key = "mx:" + domain;
  return d;
}

std::string domain_of(const std::string& address) {
  const size_t at = address.rfind('@');
  return at == std::string::npos ? std::string() : canonical_domain(address.substr(at + 1));
}

}  // namespace tern::scheduler
