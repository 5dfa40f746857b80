// The queue manager's narrow view of the on-disk queue: append state records, remove a
// finished message, name a message's file. queue::Store is the one real implementation
// (StoreFiles); unit tests use an in-memory fake.
#pragma once

#include <functional>
#include <string>

#include "common/result.hpp"
#include "queue/store.hpp"

namespace tern::qmgr {

class QueueFiles {
 public:
  virtual ~QueueFiles() = default;
  // Appends state records (queue::encode_*) and makes them durable; `done` on the loop.
  virtual void append_status(const std::string& id, std::string records, std::function<void(Status)> done) = 0;
  virtual void remove(const std::string& id, std::function<void(Status)> done) = 0;
  [[nodiscard]] virtual std::string path_of(const std::string& id) const = 0;
};

class StoreFiles final : public QueueFiles {
 public:
  explicit StoreFiles(queue::Store& s) : s_(s) {}
  void append_status(const std::string& id, std::string records, std::function<void(Status)> done) override {
    s_.append_status(id, std::move(records), std::move(done));
  }
  void remove(const std::string& id, std::function<void(Status)> done) override { s_.remove(id, std::move(done)); }
  [[nodiscard]] std::string path_of(const std::string& id) const override { return s_.dir() + "/msg/" + id; }

 private:
  queue::Store& s_;
};

}  // namespace tern::qmgr
