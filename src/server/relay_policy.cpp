// Relay decisions for RCPT TO.
#include "server/relay_policy.hpp"

#include "common/strings.hpp"

namespace tern::server {

namespace {
RcptVerdict accept(std::string to) { return {true, std::move(to), 250, "2.1.5", "Ok"}; }
RcptVerdict deny(int code, std::string enhanced, std::string text) {
  return {false, {}, code, std::move(enhanced), std::move(text)};
}
}  // namespace

RelayPolicy::RelayPolicy(const config::Config& cfg)
    : networks_(cfg.relay.networks),
      domains_(cfg.relay.domains),
      hostname_(canonical_domain(cfg.hostname)),
      postmaster_(cfg.postmaster) {}

bool RelayPolicy::client_may_relay(const IpAddress& client) const {
  for (const auto& n : networks_)
    if (n.contains(client)) return true;
  return false;
}

RcptVerdict RelayPolicy::check(const smtp::Address& rcpt, bool client_relay) const {
  // RFC 5321 §4.5.1: <postmaster> must be accepted from anyone.
  if (rcpt.bare_postmaster()) return accept(postmaster_);
  if (rcpt.literal) {
    if (client_relay) return accept(rcpt.mailbox());
    return deny(550, "5.7.1", "Relay access denied: address literals are not accepted");
  }
  const std::string domain = canonical_domain(rcpt.domain);
  if (domain == hostname_) {
    // tern has no mailboxes of its own; only postmaster@ its own name exists.
    if (iequals(rcpt.local, "postmaster")) return accept(postmaster_);
    return deny(550, "5.1.1", "No such user here");
  }
  for (const auto& d : domains_) {
    if (d.name != domain) continue;
    if (!d.recipients) return accept(rcpt.mailbox());
    const std::string local = to_lower(rcpt.local);
    if (d.recipients->count(local) || d.recipients->count(local + "@" + domain))
      return accept(rcpt.mailbox());
    return deny(550, "5.1.1", "Recipient address rejected: user unknown in relay recipient table");
  }
  if (client_relay) return accept(rcpt.mailbox());
  return deny(550, "5.7.1", "Relay access denied");
}

}  // namespace tern::server
