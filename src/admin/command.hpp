// The control protocol's command line, parsed (pure): what ternctl asks of ternd.
// Grammar (one line, words separated by spaces; ids and values never contain spaces):
//   queue [--json] | show [--body] ID | stats [--json]
//   hold|release|delete SELECTOR... | flush [SELECTOR...]
//   export SELECTOR... PATH | import PATH
//   SELECTOR = ID | --all | --domain DOMAIN | --sender ADDRESS
//   PATH = an absolute file name (ternctl makes a relative one absolute before sending it)
#pragma once

#include <string>
#include <string_view>

#include "common/result.hpp"
#include "qmgr/selector.hpp"

namespace tern::admin {

struct ControlCommand {
  enum class Verb { Queue, Show, Stats, Hold, Release, Delete, Flush, Export, Import };
  Verb verb = Verb::Queue;
  bool json = false;
  bool body = false;
  std::string id;    // show
  std::string path;  // export, import: the archive
  qmgr::Selector selector;
  [[nodiscard]] bool has_selector() const noexcept {
    return selector.all || !selector.ids.empty() || !selector.domain.empty() || !selector.sender.empty();
  }
};

// Errors are usage errors, worded for the operator.
Result<ControlCommand> parse_control(std::string_view line);

}  // namespace tern::admin
