// Builds and queues notices (bounces, delay warnings, "relayed" notices): reads the
// original back (headers only unless the whole message goes back), builds the RFC 3464
// report (bounce/dsn.cpp) and injects it as a new message from <>.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "bounce/notices.hpp"
#include "io/loop.hpp"
#include "queue/injector.hpp"

namespace tern::bounce {

struct NotifierSettings {
  std::string hostname;      // Reporting-MTA
  std::string postmaster;    // receives double bounces
  int64_t max_queue_time_us = 0;
  std::string queue_dir;     // where the originals are read from
};

class Notifier final : public Notices {
 public:
  Notifier(io::Loop& loop, const Clock& clock, queue::Injector& injector, NotifierSettings s)
      : loop_(loop), clock_(clock), injector_(injector), s_(std::move(s)) {}
  void apply(NotifierSettings s) { s_ = std::move(s); }
  void send(const queue::Envelope& env, NoticeKind kind, const std::vector<size_t>& idx,
            std::function<void(bool ok)> done) override;

 private:
  io::Loop& loop_;
  const Clock& clock_;
  queue::Injector& injector_;
  NotifierSettings s_;
  std::map<std::string, std::unique_ptr<queue::Incoming>> committing_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

 public:
  ~Notifier() override { *alive_ = false; }
};

}  // namespace tern::bounce
