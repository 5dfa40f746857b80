// Which queued messages an operator command applies to (ternctl's selectors). A value type
// shared by the control protocol's parser (also built into ternctl) and the queue manager.
#pragma once

#include <string>
#include <vector>

namespace tern::qmgr {

struct Selector {
  std::vector<std::string> ids;
  bool all = false;
  std::string domain;  // a recipient domain (canonical)
  std::string sender;  // the envelope sender, case-insensitive; "<>" is the null sender
};

}  // namespace tern::qmgr
