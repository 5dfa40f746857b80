// Every delivery event is classified here, in one place: what an SMTP reply, a DNS answer,
// a connection error or a timeout means for the recipients, as an Outcome value
// (delivered | deferred | failed, enhanced status code, text, whether it is a remote reply).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "dns/resolver.hpp"
#include "smtp/reply_parser.hpp"

namespace tern::delivery {

// An SMTP reply: 2xx delivered, 4xx deferred, 5xx failed (unless `fate` overrides it);
// the enhanced code is the reply's own, or the class default (RFC 3463 §3: X.0.0).
// `label` names the command it answered in the text ("MAIL: ").
Outcome from_reply(const smtp::Reply& r, std::string_view label, std::optional<Fate> fate = std::nullopt);

// The MX lookup of the recipient domain: nullopt when delivery goes on (Ok, or NoData =
// implicit MX, RFC 5321 §5.1); NXDOMAIN is permanent (5.1.2); anything else is temporary
// (4.4.3).
std::optional<Outcome> classify_mx_answer(const std::string& domain, const dns::MxAnswer& a);

// No usable address for any host: permanent when every lookup said the name has no
// address (NXDOMAIN/NODATA), temporary when any lookup failed.
Outcome no_address(const std::string& what, bool any_tempfail);

// One failed address: a TCP connect error (negative errno from libuv), a timeout, a
// refused greeting or EHLO. Returned as text for the per-address log line and the list of
// addresses tried.
std::string connect_error(int err);

// Every address failed: deferred (4.4.1), naming each address tried and why, so "why was
// the primary not used?" has an answer in the queue and the DSN.
// When every address failed on TLS (4.7.x statuses), the recipients are deferred with
// the TLS status instead, so the reason names the TLS failure.
Outcome unreachable(const std::vector<std::string>& tried, const std::vector<std::string>& statuses = {});

// A state's deadline passed (RFC 5321 §4.5.3.2).
Outcome timed_out(std::string_view what, const std::string& relay);

}  // namespace tern::delivery
