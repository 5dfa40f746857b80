// Who may send mail to which recipient: the open-relay guard. Pure; built from the config
// and replaced whole on reload.
#pragma once

#include <string>
#include <vector>

#include "common/net.hpp"
#include "config/config.hpp"
#include "smtp/address.hpp"

namespace tern::server {

struct RcptVerdict {
  bool accept = false;
  std::string deliver_to;  // the recipient tern will deliver to (postmaster rewrite applied)
  int code = 250;
  std::string enhanced;
  std::string text;
};

class RelayPolicy {
 public:
  explicit RelayPolicy(const config::Config& cfg);

  [[nodiscard]] bool client_may_relay(const IpAddress& client) const;
  // Decides one RCPT. The decision uses only the final mailbox (a source route is ignored,
  // RFC 5321 §3.6.1), the domain compared exactly and case-insensitively (no subdomains).
  [[nodiscard]] RcptVerdict check(const smtp::Address& rcpt, bool client_relay) const;

 private:
  std::vector<Cidr> networks_;
  std::vector<config::RelayDomain> domains_;
  std::string hostname_;
  std::string postmaster_;
};

}  // namespace tern::server
