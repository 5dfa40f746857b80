// What delivery asks of MTA-STS: the policy in force for one recipient domain. One real
// implementation (sts::Policies) and fakes in unit tests.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "sts/policy.hpp"

namespace tern::sts {

struct Applied {
  std::optional<Policy> policy;  // nullopt: the domain has no policy (or none usable)
  std::string id;                // the policy's TXT id, for log lines
};

class Source {
 public:
  virtual ~Source() = default;
  // `cb` runs on the loop thread, exactly once, never inside the call itself.
  virtual void policy_for(const std::string& domain, std::function<void(Applied)> cb) = 0;
};

}  // namespace tern::sts
