// Self identity from the config and the machine's interfaces.
#include "delivery/self.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <cstring>

#include "common/strings.hpp"

namespace tern::delivery {

namespace {
std::vector<IpAddress> interface_addresses(bool v6) {
  std::vector<IpAddress> out;
  struct ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (auto* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    IpAddress a;
    if (!v6 && i->ifa_addr->sa_family == AF_INET) {
      std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
      out.push_back(a);
    } else if (v6 && i->ifa_addr->sa_family == AF_INET6) {
      a.v6 = true;
      std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
      out.push_back(a);
    }
  }
  ::freeifaddrs(list);
  return out;
}

bool unspecified(const IpAddress& a) {
  for (size_t i = 0; i < (a.v6 ? 16u : 4u); ++i)
    if (a.bytes[i]) return false;
  return true;
}
}  // namespace

dns::Self make_self(const config::Config& cfg) {
  dns::Self self;
  self.hostname = canonical_domain(cfg.hostname);
  for (const auto& l : cfg.listen) {
    if (unspecified(l.address.address)) {
      for (const auto& a : interface_addresses(l.address.address.v6)) {
        self.addresses.push_back(a);
        self.listeners.push_back(Endpoint{a, l.address.port});
      }
    } else {
      self.addresses.push_back(l.address.address);
      self.listeners.push_back(l.address);
    }
  }
  for (const auto& a : cfg.delivery.external_addresses) self.addresses.push_back(a);
  for (const auto& a : cfg.delivery.source_addresses) self.addresses.push_back(a);
  return self;
}

}  // namespace tern::delivery
