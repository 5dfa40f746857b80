// ternd's import of the maildrop: the files tern-sendmail leaves while ternd is down. It
// owns the scan (at start-up, whenever the directory changes, and on a slow timer in case a
// change went unnoticed; on the thread pool) and the unlink that follows each committed
// injection.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "io/loop.hpp"
#include "server/local_submission.hpp"

namespace tern::server {

class Maildrop {
 public:
  // `max_size` bounds the files taken (the message limit plus room for the request lines).
  Maildrop(io::Loop& loop, std::string dir, LocalSubmission& submission, std::string hostname, uint64_t max_size,
           uint32_t max_rcpts);
  ~Maildrop();
  Maildrop(const Maildrop&) = delete;
  Maildrop& operator=(const Maildrop&) = delete;
  // Scans now, on every change to the directory, and every `interval_ms`.
  void start(uint64_t interval_ms);

 private:
  void scan();
  io::Loop& loop_;
  std::string dir_;
  LocalSubmission& submission_;
  std::string hostname_;
  uint64_t max_size_;
  uint32_t max_rcpts_;
  io::Timer timer_;
  io::Timer retry_;  // after a temporary refusal (queue short of space, say)
  static constexpr uint64_t kRetryMs = 5000;
  io::DirWatch watch_;
  bool scanning_ = false;
  bool rescan_ = false;  // a change came in while a scan ran: scan again after it
  std::set<std::string> in_flight_;  // file names being injected: not taken twice
  std::set<std::string> warned_;     // unreadable files already logged
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tern::server
