// TLS per destination: level, names, credentials.
#include "delivery/tls_policy.hpp"

#include "common/net.hpp"

namespace tern::delivery {

TlsPlan plan_tls(const scheduler::Destination& d, const config::Delivery& delivery,
                 const std::map<std::string, config::Route>& routes) {
  TlsPlan p;
  p.level = delivery.tls;
  p.ca_file = delivery.tls_ca_file;
  if (d.route) {
    // The route that produced this destination: the domain's own, else "*" (as
    // scheduler::destination_for chose it).
    auto it = routes.find(d.domain);
    if (it == routes.end()) it = routes.find("*");
    if (it != routes.end()) {
      const config::Route& r = it->second;
      if (r.tls) p.level = *r.tls;
      if (!r.tls_ca_file.empty()) p.ca_file = r.tls_ca_file;
      p.implicit = r.implicit_tls;
      if (r.auth) p.auth = ClientSecurity::Credentials{r.auth->username, r.auth->password};
    }
    // A route's certificate must name the configured host.
    if (!IpAddress::parse(d.host)) p.names = {d.host};
    return p;
  }
  if (auto it = delivery.tls_policy.find(d.domain); it != delivery.tls_policy.end()) p.level = it->second;
  p.names = {d.domain, "." + d.domain};
  p.mx_names = true;
  return p;
}

TlsPlan plan_for_host(const TlsPlan& plan, const HostDane& dane) {
  TlsPlan p = plan;
  if (plan.level != config::TlsLevel::Dane) return p;
  switch (dane.mode) {
    case DaneMode::Authenticate:
      p.tlsa = dane.records;
      break;
    case DaneMode::EncryptOnly:
      p.level = config::TlsLevel::Encrypt;
      break;
    case DaneMode::Opportunistic:
    case DaneMode::Unusable:
      p.level = config::TlsLevel::May;
      break;
  }
  return p;
}

std::vector<std::string> verify_names(const TlsPlan& plan, const std::string& host, bool mx_secure) {
  std::vector<std::string> names = plan.names;
  if ((plan.host_name || (plan.mx_names && mx_secure)) && !host.empty() && !IpAddress::parse(host))
    names.push_back(host);
  return names;
}

StsPlan sts_plan(const sts::Applied& a) {
  StsPlan p;
  if (!a.policy) return p;
  p.mode = a.policy->mode;
  p.mx = a.policy->mx;
  p.id = a.id;
  return p;
}

void apply_sts(TlsPlan& plan, const StsPlan& sts, const scheduler::Destination& d,
               const config::Delivery& delivery) {
  if (!sts.active() || d.route || delivery.tls_policy.count(d.domain)) return;
  if (sts.mode == sts::Mode::Enforce) plan.level = config::TlsLevel::Verify;
  if (plan.level == config::TlsLevel::Verify && sts.mode != sts::Mode::Enforce) return;
  // §4.2: the certificate must be valid for the MX host name (not the recipient domain).
  plan.ca_file = delivery.tls_ca_file;
  plan.names.clear();
  plan.mx_names = false;
  plan.host_name = true;
}

std::vector<dns::MxHost> sts_filter_hosts(std::vector<dns::MxHost> hosts, const StsPlan& sts,
                                          std::vector<std::string>& mismatched) {
  if (!sts.active()) return hosts;
  sts::Policy p;
  p.mx = sts.mx;
  std::vector<dns::MxHost> kept;
  for (auto& h : hosts) {
    if (sts::mx_matches(p, h.name)) {
      kept.push_back(std::move(h));
      continue;
    }
    mismatched.push_back(h.name);
    if (sts.mode != sts::Mode::Enforce) kept.push_back(std::move(h));
  }
  return kept;
}

ClientSecurity session_security(const TlsPlan& plan, bool plaintext) {
  ClientSecurity s;
  const bool any_tls = plan.level != config::TlsLevel::None;
  s.starttls = any_tls && !plan.implicit && !plaintext;
  s.require_tls = plan.level == config::TlsLevel::Encrypt || plan.level == config::TlsLevel::Verify ||
                  plan.level == config::TlsLevel::Dane || plan.auth.has_value();
  s.tls_active = plan.implicit;
  s.auth = plan.auth;
  return s;
}

}  // namespace tern::delivery
