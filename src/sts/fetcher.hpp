// Fetches one MTA-STS policy file over HTTPS with libcurl (RFC 8461 §3.3): the only user of
// libcurl. Each fetch is one blocking easy handle on a small pool of tern's own worker
// threads (io::WorkerPool), never on the loop thread.
//
// Why blocking handles on a worker pool rather than curl's multi-socket API on libuv: a
// policy fetch is rare (once per domain and max_age) and bounded by a short timeout, so
// a thread per fetch in flight costs little, and the whole transfer is then a dozen lines
// of straight-line libcurl calls instead of socket and timer callbacks bridged into the
// loop. The pool is not libuv's thread pool: there a slow policy host could hold up the
// queue's writes and fsyncs for the length of the timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/net.hpp"
#include "common/result.hpp"
#include "io/loop.hpp"
#include "io/worker_pool.hpp"

namespace tern::sts {

struct FetchRequest {
  std::string domain;                // the policy domain; the URL names mta-sts.DOMAIN
  std::vector<IpAddress> addresses;  // mta-sts.DOMAIN as tern's resolver found it
  uint16_t port = 443;
  std::string ca_file;               // empty: the system store
  std::chrono::seconds timeout{10};  // connect and whole transfer
};

// The body of a 200 answer with Content-Type text/plain, at most kMaxPolicySize octets;
// anything else (a redirect, another status or type, a certificate that does not verify
// for mta-sts.DOMAIN, an oversized body, a timeout) is an error saying why. Blocking:
// runs on a worker thread. `cancel` aborts the transfer when it becomes true.
Result<std::string> fetch_blocking(const FetchRequest& req, const std::atomic<bool>& cancel);

class Fetcher {
 public:
  // libcurl's global state is set up here (on the loop thread, before any worker runs).
  Fetcher(io::Loop& loop, unsigned threads);
  // Transfers in flight are aborted and waited for; their callbacks never run.
  ~Fetcher();
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  // `done` runs on the loop thread, exactly once (also when the pool is full).
  void fetch(FetchRequest req, std::function<void(Result<std::string>)> done);

 private:
  io::Loop& loop_;
  std::shared_ptr<std::atomic<bool>> cancel_ = std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<io::WorkerPool> pool_;
  std::unique_ptr<io::Timer> refusal_;  // delivers "pool full" answers on a later turn
  std::vector<std::function<void()>> refused_;
};

}  // namespace tern::sts
