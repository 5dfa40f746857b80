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
#include "dns/mx.hpp"
#include "scheduler/destination.hpp"
#include "sts/source.hpp"

namespace tern::delivery {

struct TlsPlan {
  config::TlsLevel level = config::TlsLevel::May;
  bool implicit = false;
  std::string ca_file;  // empty: the system store
  std::optional<ClientSecurity::Credentials> auth;
  std::vector<std::string> names;  // accepted certificate names (a leading '.': subdomains)
  bool mx_names = false;           // the MX host's own name is accepted when the MX answer is secure
  std::vector<dns::TlsaRecord> tlsa;  // level Dane, for one host: the usable TLSA records
  bool host_name = false;          // the host's own name is accepted whatever DNSSEC said (MTA-STS)
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

// MTA-STS (RFC 8461) for one MX destination: the policy in force when the connection
// started, if any. `mode` None also stands for "no policy".
struct StsPlan {
  sts::Mode mode = sts::Mode::None;
  std::vector<std::string> mx;  // the policy's patterns
  std::string id;
  [[nodiscard]] bool active() const noexcept { return mode != sts::Mode::None; }
};
StsPlan sts_plan(const sts::Applied& a);

// The one place MTA-STS changes a destination's TLS plan (RFC 8461 §4.2): under enforce,
// TLS is required and the certificate verified against delivery.tls_ca_file for the MX
// host's own name; under testing the level stays, but verification is judged against the
// MX host's name so a failure can be logged. A per-domain tls_policy entry is the
// operator's explicit word and is left alone. DANE, where a host has usable TLSA records,
// takes precedence: the caller then uses its DANE plan for that host instead of this one.
void apply_sts(TlsPlan& plan, const StsPlan& sts, const scheduler::Destination& d,
               const config::Delivery& delivery);

// §4.1: the hosts an MTA-STS policy lets mail go to, in their order. Under enforce, hosts
// matching no pattern are dropped; under testing all stay. `mismatched` receives the names
// of the hosts that match no pattern (dropped, or only logged under testing).
std::vector<dns::MxHost> sts_filter_hosts(std::vector<dns::MxHost> hosts, const StsPlan& sts,
                                          std::vector<std::string>& mismatched);

// The security the SMTP session applies, for a connection to one address. `plaintext`:
// the retry in plaintext after a failed handshake under `may`.
ClientSecurity session_security(const TlsPlan& plan, bool plaintext);

}  // namespace tern::delivery
