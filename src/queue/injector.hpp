// The single path by which new messages enter the queue: SMTP (DATA and BDAT), notices,
// local submission and imports from another node (ternctl import) all start here with an envelope and the headers tern prepends,
// append the body in pieces, and commit. Committed messages reach the queue manager
// through Store::on_committed.
#pragma once

#include <memory>
#include <string_view>

#include "queue/store.hpp"

namespace tern::queue {

class Injector {
 public:
  explicit Injector(Store& store) : store_(store) {}
  // The message's id is assigned here (Incoming::id()); `prelude` (Received:, and for
  // relay clients Message-ID:/Date: when missing) is written before any body piece.
  // `history`: the state records an imported message carries (Store::begin).
  [[nodiscard]] std::unique_ptr<Incoming> begin(Envelope env, std::string_view prelude = {},
                                                const std::vector<std::string>& history = {}) {
    auto in = store_.begin(std::move(env), history);
    if (!prelude.empty()) in->append(prelude);
    return in;
  }
  [[nodiscard]] bool has_room(uint64_t need) const noexcept { return store_.has_room(need); }
  [[nodiscard]] size_t commits_in_flight() const noexcept { return store_.commits_in_flight(); }

 private:
  Store& store_;
};

}  // namespace tern::queue
