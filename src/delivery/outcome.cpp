// Failure classification for delivery.
#include "delivery/outcome.hpp"

#include <cstring>

namespace tern::delivery {

scheduler::Result to_result(Verdict v) noexcept {
  switch (v) {
    case Verdict::Delivered: return scheduler::Result::Delivered;
    case Verdict::Deferred: return scheduler::Result::Deferred;
    case Verdict::Failed: return scheduler::Result::Failed;
    case Verdict::RetryNow: return scheduler::Result::RetryNow;
  }
  return scheduler::Result::Deferred;
}

Status classify_mx_answer(const std::string& domain, const dns::MxAnswer& a) {
  switch (a.rcode) {
    case dns::Rcode::Ok:
    case dns::Rcode::NoData:
      return ok_status();
    case dns::Rcode::NxDomain:
      return Error::perm("5.1.2 Domain " + domain + " does not exist (NXDOMAIN)");
    case dns::Rcode::TempFail:
    case dns::Rcode::Malformed:
      break;
  }
  return Error::temp("4.4.3 MX lookup for " + domain + " failed: " + (a.detail.empty() ? "temporary DNS failure" : a.detail));
}

Error no_address(const std::string& what, bool any_tempfail) {
  if (any_tempfail) return Error::temp("4.4.3 Address lookup failed for " + what);
  return Error::perm("5.1.2 No address (A/AAAA) found for " + what);
}

std::string connect_error(const std::string& relay, int err) {
  return "4.4.1 Connection to " + relay + " failed: " + std::strerror(-err);
}

}  // namespace tern::delivery
