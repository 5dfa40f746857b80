// Which notices are owed (pure policy, RFC 3461 NOTIFY and tern's double-bounce rule), and
// the interface through which the queue manager asks for one to be queued.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "queue/envelope.hpp"

namespace tern::bounce {

enum class NoticeKind { Failure, Delay, Relayed };

struct Policy {
  bool double_bounce_to_postmaster = false;
  std::string postmaster;
  int64_t delay_warning_us = 0;  // 0: never
};

// A failed recipient is owed a bounce: per its NOTIFY; for mail from <> only where
// configured (to the postmaster), and never about the postmaster itself (no loops).
bool owes_failure_notice(const Policy& p, const queue::Envelope& env, const queue::Recipient& r);
// The deferred recipients that get the (single) delay warning now; empty when none is due.
std::vector<size_t> delay_warning_due(const Policy& p, const queue::Envelope& env,
                                      const std::vector<size_t>& deferred, int64_t now_us);
// The recipients delivered to a next hop that took no DSN parameters and that asked for
// NOTIFY=SUCCESS: they get a "relayed" notice (RFC 3461 §6.2.6).
std::vector<size_t> relayed_notice_due(const queue::Envelope& env, const std::vector<size_t>& delivered);

// Builds a notice about `idx` of `env` and queues it as a new message from <>.
class Notices {
 public:
  virtual ~Notices() = default;
  // `done(true)` once the notice is durable in the queue; false when it could not be
  // queued (it is asked for again later).
  virtual void send(const queue::Envelope& env, NoticeKind kind, const std::vector<size_t>& idx,
                    std::function<void(bool ok)> done) = 0;
};

}  // namespace tern::bounce
