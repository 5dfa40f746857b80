// What a delivery connection sees of the queue: a job's delivery request, and where its
// per-recipient outcomes go. The queue manager implements it; delivery depends on nothing
// else of the queue's state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/outcome.hpp"

namespace tern::qmgr {

using JobId = uint64_t;

// One transaction's worth of work: a message's recipients for one destination.
struct DeliveryRequest {
  JobId job = 0;
  std::string msg_id;
  std::string sender;                    // reverse-path without <>
  std::vector<std::string> mail_params;  // raw, as received (BODY=, SMTPUTF8, RET=, ENVID=)
  std::vector<std::string> rcpts;        // without <>
  std::vector<std::vector<std::string>> rcpt_params;  // raw, same order (NOTIFY=, ORCPT=)
  uint64_t size = 0;                     // of the message data
  std::string path;                      // the queue file, for the body reader
};

class Jobs {
 public:
  virtual ~Jobs() = default;
  // The request behind a job handed out by the scheduler; nullopt when there is nothing
  // left to attempt (the message expired or went away meanwhile: the job is closed).
  virtual std::optional<DeliveryRequest> begin(JobId id) = 0;
  // Outcomes in the request's recipient order (exactly one each). `attempt_started_us`
  // is when the attempt began.
  virtual void report(JobId id, std::vector<Outcome> outcomes, int64_t attempt_started_us) = 0;
};

}  // namespace tern::qmgr
