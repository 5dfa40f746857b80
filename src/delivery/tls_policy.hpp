// Which TLS a destination gets (pure): the level from the route or the per-domain policy,
// the CA file, implicit TLS, credentials, and the names a certificate must carry under
// `verify` (Postfix's "secure" matching: the domain and its subdomains; the MX host only
// when the MX answer was DNSSEC-secure, since forged DNS could name any host).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "delivery/client_session.hpp"
#include "delivery/dane.hpp"
#include "scheduler/destination.hpp"

namespace tern::delivery {

struct TlsPlan {
  config::TlsLevel level = config::TlsLevel::May;
  bool implicit = false;
  std::string ca_file;  // empty: the system store
  std::optional<ClientSecurity::Credentials> auth;
  std::vector<std::string> names;  // accepted certificate names (a leading '.': subdomains)
  bool mx_names = false;           // the MX host's own name is accepted when the MX answer is secure
  std::vector<dns::TlsaRecord> tlsa;  // level Dane, for one host: the usable TLSA records
};

TlsPlan plan_tls(const scheduler::Destination& d, const config::Delivery& delivery,
                 const std::map<std::string, config::Route>& routes);

// The plan for one host of a `dane` destination (RFC 7672 §2.2): authenticated by its
// TLSA records (level Dane), TLS without authentication when its secure set has no usable
// record (Encrypt), `may` when it has no secure TLSA records. Other levels pass unchanged.
// A host whose DANE state is Unusable is not connected to at all (the caller checks).
TlsPlan plan_for_host(const TlsPlan& plan, const HostDane& dane);

// The names for one host of the destination: the plan's, plus the host's own name when
// `mx_secure` allows it. `host` is the MX (or route) host name.
std::vector<std::string> verify_names(const TlsPlan& plan, const std::string& host, bool mx_secure);

// The security the SMTP session applies, for a connection to one address. `plaintext`:
// the retry in plaintext after a failed handshake under `may`.
ClientSecurity session_security(const TlsPlan& plan, bool plaintext);

}  // namespace tern::delivery
