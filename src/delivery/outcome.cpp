// Failure classification for delivery.
#include "delivery/outcome.hpp"

#include <cstring>

namespace tern::delivery {

Outcome from_reply(const smtp::Reply& r, std::string_view label, std::optional<Fate> fate) {
  Outcome o;
  o.fate = fate ? *fate : r.positive() ? Fate::Delivered : r.temporary() ? Fate::Deferred : Fate::Failed;
  const char cls = o.fate == Fate::Delivered ? '2' : o.fate == Fate::Failed ? '5' : '4';
  // A server's own code is kept only when its class agrees with what we decided.
  o.status = !r.enhanced.empty() && r.enhanced[0] == cls ? r.enhanced : std::string(1, cls) + ".0.0";
  o.text = std::string(label) + r.str();
  o.remote = true;
  return o;
}

std::optional<Outcome> classify_mx_answer(const std::string& domain, const dns::MxAnswer& a) {
  switch (a.rcode) {
    case dns::Rcode::Ok:
    case dns::Rcode::NoData:
      return std::nullopt;
    case dns::Rcode::NxDomain:
      return Outcome::make(Fate::Failed, "5.1.2", "Domain " + domain + " does not exist (NXDOMAIN)");
    case dns::Rcode::TempFail:
    case dns::Rcode::Malformed:
      break;
  }
  return Outcome::make(Fate::Deferred, "4.4.3",
                       "MX lookup for " + domain + " failed: " + (a.detail.empty() ? "temporary DNS failure" : a.detail));
}

Outcome no_address(const std::string& what, bool any_tempfail) {
  if (any_tempfail) return Outcome::make(Fate::Deferred, "4.4.3", "Address lookup failed for " + what);
  return Outcome::make(Fate::Failed, "5.1.2", "No address (A/AAAA) found for " + what);
}

std::string connect_error(int err) { return std::string("connect failed: ") + std::strerror(-err); }

Outcome unreachable(const std::vector<std::string>& tried, const std::vector<std::string>& statuses) {
  bool all_tls = !statuses.empty() && statuses.size() == tried.size();
  for (const auto& s : statuses) all_tls = all_tls && s.starts_with("4.7.");
  std::string text = all_tls ? "No host could be reached with the security required" : "No host could be reached";
  for (size_t i = 0; i < tried.size(); ++i) text += (i ? "; " : ": ") + tried[i];
  return Outcome::make(Fate::Deferred, all_tls ? statuses.back() : "4.4.1", std::move(text));
}

Outcome timed_out(std::string_view what, const std::string& relay) {
  return Outcome::make(Fate::Deferred, "4.4.2", "Timeout waiting for the " + std::string(what) + " from " + relay);
}

}  // namespace tern::delivery
