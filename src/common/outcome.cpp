// Names of delivery fates, for logs.
#include "common/outcome.hpp"

namespace tern {

const char* to_string(Fate f) noexcept {
  switch (f) {
    case Fate::Delivered: return "delivered";
    case Fate::Deferred: return "deferred";
    case Fate::Failed: return "failed";
    case Fate::RetryNow: return "retry-now";
  }
  return "?";
}

}  // namespace tern
