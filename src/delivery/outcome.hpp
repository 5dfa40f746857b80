// Every delivery failure is classified here, in one place: what a client-session verdict,
// a DNS answer or a connection error means for the recipients (delivered, deferred, failed).
#pragma once

#include <string>

#include "common/result.hpp"
#include "delivery/client_session.hpp"
#include "dns/resolver.hpp"
#include "scheduler/scheduler.hpp"

namespace tern::delivery {

scheduler::Result to_result(Verdict v) noexcept;

// The MX lookup of the recipient domain: Ok/NoData go on (NoData = implicit MX, RFC 5321
// §5.1); NXDOMAIN is permanent (5.1.2); anything else is temporary (4.4.3).
Status classify_mx_answer(const std::string& domain, const dns::MxAnswer& a);

// No usable address for any host: permanent when every lookup said the name has no
// address (NXDOMAIN/NODATA), temporary when any lookup failed.
Error no_address(const std::string& what, bool any_tempfail);

// A failed TCP connect (negative errno from libuv) as text for logs and queue records.
std::string connect_error(const std::string& relay, int err);

}  // namespace tern::delivery
