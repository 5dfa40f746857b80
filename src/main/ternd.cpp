// ternd: wiring only. Flags → config → queue → listener → loop; signals for stop and reload.
#include <sys/stat.h>
#include <malloc.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <string>

#include "admin/control.hpp"
#include "admin/format.hpp"
#include "admin/transfer.hpp"
#include "auth/users.hpp"
#include "bounce/notifier.hpp"
#include "common/clock.hpp"
#include "common/log_format.hpp"
#include "config/config.hpp"
#include "delivery/agent.hpp"
#include "delivery/self.hpp"
#include "dns/unbound_resolver.hpp"
#include "io/loop.hpp"
#include "metrics/server.hpp"
#include "qmgr/manager.hpp"
#include "queue/codec.hpp"
#include "queue/injector.hpp"
#include "queue/store.hpp"
#include "scheduler/scheduler.hpp"
#include "server/local_submission.hpp"
#include "server/maildrop.hpp"
#include "server/server.hpp"
#include "service/notify.hpp"
#include "service/privileges.hpp"
#include "sts/policies.hpp"
#include "tls/context.hpp"

namespace {

constexpr const char* kUsage =
    "usage: ternd --config PATH [--check] [--allow-root]\n"
    "  --config PATH  configuration file (YAML)\n"
    "  --check        validate the configuration and exit (0 = valid)\n"
    "  --allow-root   run as root although the config names no user: to drop to\n"
    "  --version      print the version\n";

struct Flags {
  std::string config;
  bool check = false;
  bool allow_root = false;
};

// Hand-written: two flags do not earn a dependency.
std::optional<Flags> parse_flags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) f.config = argv[++i];
    else if (a.starts_with("--config=")) f.config = a.substr(9);
    else if (a == "--check") f.check = true;
    else if (a == "--allow-root") f.allow_root = true;
    else if (a == "--version") {
      std::printf("ternd 0.1.0\n");
      std::exit(0);
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      std::fprintf(stderr, "ternd: unknown argument '%s'\n%s", a.c_str(), kUsage);
      return std::nullopt;
    }
  }
  if (f.config.empty()) {
    std::fprintf(stderr, "ternd: --config PATH is required\n%s", kUsage);
    return std::nullopt;
  }
  return f;
}

// Log lines queued for the logging thread before the oldest are dropped.
constexpr size_t kLogQueueLines = 16384;
// The maildrop is scanned at start, on every inotify event in it, and this often in case an
// event was lost (inotify limits, a file system without it).
constexpr uint64_t kMaildropScanMs = 60000;

// Logging never blocks the loop thread: lines go to a queue that one spdlog thread writes to
// stderr (a slow journal or a full pipe stalls that thread, not mail). When the queue is
// full the oldest queued line is overwritten (overrun_oldest) rather than the loop waiting
// for room: under a flood heavy enough to fill 16k lines, losing a line is better than
// stalling every connection. spdlog::shutdown() (main's exit path) writes out what is queued.
void setup_logging(const std::string& level, bool json) {
  spdlog::init_thread_pool(kLogQueueLines, 1);
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::async_logger>("tern", sink, spdlog::thread_pool(),
                                                       spdlog::async_overflow_policy::overrun_oldest);
  // Under systemd, stderr is a journal stream: journald stamps the time and reads "<N>"
  // priority prefixes.
  const char* journal = std::getenv("JOURNAL_STREAM");
  logger->set_formatter(tern::make_log_formatter(json ? tern::LogFormat::Json : tern::LogFormat::Text,
                                                 journal && *journal));
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::flush_on(spdlog::level::trace);  // each line leaves the logging thread at once
}

// Descriptors beyond inbound and delivery connections: queue files open in the thread pool
// (16 threads, plus one spool file per message being received beyond that), DNS sockets,
// the listeners, the control socket and its clients, the log.
constexpr uint64_t kFdReserve = 64;

// Warns when the configured connection limits cannot fit under the open-files limit: the
// daemon would then run out of descriptors under load (accept fails, connects fail).
void check_fd_budget(const tern::config::Config& c, uint64_t fd_limit) {
  const uint64_t local = tern::server::LocalSubmission::kMaxClients;
  const uint64_t need = uint64_t(c.limits.max_connections) + c.delivery.max_in_flight + local + kFdReserve;
  if (need > fd_limit)
    spdlog::warn("ternd: open-files limit {} is below what the limits need: limits.max_connections {} + "
                 "delivery.max_in_flight {} + {} local submissions + {} for queue files, DNS and control = {}; "
                 "raise the limit (LimitNOFILE=, ulimit -n) or lower the connection limits",
                 fd_limit, c.limits.max_connections, c.delivery.max_in_flight, local, kFdReserve, need);
}

// The users file is read here too (besides by the verifiers, whenever it changes), so that
// --check and startup report a bad line as file:line. Its warnings (a world-readable file,
// weak legacy hashes) go to `warn`.
bool users_file_ok(const tern::config::Config& c, const std::function<void(const std::string&)>& warn,
                   std::string& error) {
  if (c.auth.users_file.empty()) return true;
  auto users = tern::auth::load_users(c.auth.users_file);
  if (!users) {
    error = users.error().message;
    return false;
  }
  for (const auto& w : users->warnings) warn(w);
  return true;
}

}  // namespace

int run(int argc, char** argv) {
  auto flags = parse_flags(argc, argv);
  if (!flags) return 1;
  auto cfg = tern::config::load_file(flags->config);
  if (!cfg) {
    std::fprintf(stderr, "ternd: %s\n", cfg.error().message.c_str());
    return 1;
  }
  std::string users_error;
  if (!users_file_ok(*cfg, [](const std::string& w) { std::fprintf(stderr, "ternd: warning: %s\n", w.c_str()); },
                     users_error)) {
    std::fprintf(stderr, "ternd: %s\n", users_error.c_str());
    return 1;
  }
  // The certificate is part of the configuration: a bad one stops the start (and --check).
  std::shared_ptr<const tern::tls::ServerContext> tls_ctx;
  if (!cfg->tls.cert.empty()) {
    auto ctx = tern::tls::ServerContext::load(cfg->tls.cert, cfg->tls.key);
    if (!ctx) {
      std::fprintf(stderr, "ternd: %s: tls: %s\n", flags->config.c_str(), ctx.error().message.c_str());
      return 1;
    }
    tls_ctx = std::move(ctx.value());
  }
  // ternd reads these files as root at start but as `user:` on SIGHUP: say now, not at the
  // first reload, when that user cannot read one.
  std::vector<std::string> reread_warnings;
  if (!cfg->user.empty()) {
    if (auto bad = tern::service::unreadable_by(cfg->user, cfg->reread_files()); !bad) {
      if (flags->check) reread_warnings.push_back(bad.error().message);
    } else {
      for (const auto& b : *bad)
        reread_warnings.push_back("user " + cfg->user + " cannot read " + b +
                                  " (files re-read on SIGHUP must be readable by user:)");
    }
  }
  if (flags->check) {
    for (const auto& w : cfg->warnings) std::fprintf(stderr, "ternd: warning: %s\n", w.c_str());
    for (const auto& w : reread_warnings) std::fprintf(stderr, "ternd: warning: %s\n", w.c_str());
    std::printf("ternd: %s: configuration is valid\n", flags->config.c_str());
    return 0;
  }
  // Disk work (writes, fsync, renames) runs in libuv's pool: enough threads for concurrent
  // fsyncs to share journal commits. Must be set before the pool starts.
  setenv("UV_THREADPOOL_SIZE", "16", 0);
  // glibc gives each thread that allocates an arena of its own (up to 8 per core). At
  // startup the pool threads parse the queue files, so a million envelopes end up spread
  // over up to 16 heaps, each grown a little at a time: with 2 arenas, reading 1,000,000
  // queued messages took ~2 s less CPU (of ~29 s; two back-to-back pairs of runs). The
  // loop and pool threads allocate little otherwise, so 2 are plenty.
  ::mallopt(M_ARENA_MAX, 2);
  std::signal(SIGPIPE, SIG_IGN);
  ::umask(027);  // queue files 0640, directories 0750, whatever the caller's umask
  setup_logging(cfg->log_level, cfg->log_json);
  // Root only as long as needed: everything from here on (the queue, its files and lock,
  // the sockets) is done as `user:`, with CAP_NET_BIND_SERVICE kept for ports below 1024.
  if (::geteuid() == 0 && cfg->user.empty() && !flags->allow_root) {
    spdlog::critical("ternd: refusing to run as root: set user: in {} (ternd then drops to it after start) "
                     "or pass --allow-root", flags->config);
    return 1;
  }
  if (!cfg->user.empty()) {
    if (auto st = tern::service::drop_privileges(cfg->user); !st) {
      spdlog::critical("ternd: {}", st.error().message);
      return 1;
    }
    spdlog::info("ternd: running as user {} (uid {})", cfg->user, ::geteuid());
    for (const auto& w : reread_warnings) spdlog::warn("ternd: {}", w);
  }
  // The soft limit is raised to the hard one: the default soft 1024 is far below what the
  // default connection limits need.
  const uint64_t fds = tern::io::raise_fd_limit();
  spdlog::info("ternd: starting: hostname={} config={} queue={} open-files={}", cfg->hostname,
               cfg->source_path, cfg->queue_dir, fds);
  check_fd_budget(*cfg, fds);
  for (const auto& w : cfg->warnings) spdlog::warn("ternd: config: {}", w);
  if (tls_ctx) spdlog::info("ternd: TLS certificate loaded: {}", tls_ctx->description());

  tern::SystemClock clock;
  tern::io::Loop loop;
  auto store = tern::queue::Store::open(loop, cfg->queue_dir, clock);
  if (!store) {
    spdlog::critical("ternd: {}", store.error().message);
    return 1;
  }
  (*store)->set_min_free(cfg->queue_min_free);

  auto resolver = tern::dns::UnboundResolver::create(
      loop, cfg->dns.forwarders, std::chrono::duration_cast<std::chrono::milliseconds>(cfg->dns.timeout),
      cfg->dns.trust_anchor);
  if (!resolver) {
    spdlog::critical("ternd: {}", resolver.error().message);
    return 1;
  }
  std::random_device seed_source;
  auto limits = [](const tern::config::Config& c) {
    return tern::scheduler::Limits{c.delivery.max_in_flight, c.delivery.max_per_destination, c.delivery.retry};
  };
  auto qmgr_settings = [](const tern::config::Config& c) {
    return tern::qmgr::Settings{c.delivery, c.routes, c.postmaster};
  };
  auto notifier_settings = [](const tern::config::Config& c) {
    return tern::bounce::NotifierSettings{c.hostname, c.postmaster,
                                          int64_t(c.delivery.max_queue_time.count()) * 1000000, c.queue_dir};
  };
  // Reads files (interface addresses, CA certificates): runs off the loop on reload.
  auto agent_settings = [](const tern::config::Config& c) {
    tern::delivery::AgentSettings s{c.hostname, c.delivery, tern::delivery::make_self(c), c.routes, {}, {}};
    tern::delivery::load_tls_clients(s);
    for (const auto& [file, why] : s.tls_errors)
      spdlog::error("ternd: outbound TLS: {}; mail needing these CA certificates waits", why);
    return s;
  };
  tern::io::ClockAlarm sched_alarm(loop, clock), notice_alarm(loop, clock);
  tern::queue::Injector injector(**store);
  tern::qmgr::StoreFiles files(**store);
  tern::bounce::Notifier notifier(loop, clock, injector, notifier_settings(*cfg));
  auto scheduler = std::make_unique<tern::scheduler::Scheduler>(sched_alarm, clock, limits(*cfg), seed_source());
  auto manager = std::make_unique<tern::qmgr::Manager>(clock, files, *scheduler, notifier, notice_alarm,
                                                       qmgr_settings(*cfg), seed_source());
  auto agent = std::make_unique<tern::delivery::Agent>(loop, clock, *manager, *scheduler, **resolver,
                                                       agent_settings(*cfg), seed_source());
  scheduler->set_dispatcher(agent.get());
  // MTA-STS: policies cached on disk are read at once; deliveries wait for them.
  std::unique_ptr<tern::sts::Policies> sts_policies;
  if (cfg->mta_sts.enabled) {
    const auto& m = cfg->mta_sts;
    sts_policies = std::make_unique<tern::sts::Policies>(
        loop, clock, **resolver, tern::sts::Settings{m.cache_dir, m.ca_file, m.https_port, m.timeout});
    sts_policies->start();
    agent->set_sts(sts_policies.get());
  }
  tern::Counters counters;
  const int64_t started_us = clock.now_us();
  manager->set_counters(&counters);
  agent->set_counters(&counters);
  // An operator's delete cancels the attempt in flight for that message.
  manager->set_canceller([&](tern::qmgr::JobId j) { agent->cancel(j); });
  // ternctl export and import; the archive entry limit follows limits.max_message_size (the
  // data) plus the largest header a queue file may have.
  auto transfer_settings = [](const tern::config::Config& c) {
    return tern::admin::TransferSettings{c.hostname, c.queue_dir, c.limits.max_message_size + tern::queue::kMaxHeader};
  };
  tern::admin::Transfer transfer(loop, clock, *manager, injector, transfer_settings(*cfg));
  (*store)->on_committed([&](const tern::queue::Envelope& env, uint64_t size) {
    if (env.notice_for.empty() && env.origin.empty()) ++counters.received;
    // An imported message is scheduled like one read back at startup: its deferred
    // recipients wait out their backoff from the last attempt on the exporting node.
    manager->add(env, size, !env.origin.empty());
  });

  // Recovery reads msg/ on the thread pool in batches while the loop runs: recovered mail
  // is scheduled (and delivered) batch by batch, and the queue manager sends no notice
  // until the whole queue has been read. The listener opens as soon as msg/ has been listed
  // (new messages get names recovery does not touch), so a large queue does not keep
  // clients waiting.
  bool listed = false, recovered = false, stopping = false;
  (*store)->recover_async(
      [&](size_t files) {
        listed = true;
        spdlog::info("queue: reading {} file(s) in msg/; accepting mail meanwhile", files);
      },
      [&](std::vector<tern::queue::Envelope>&& msgs, std::vector<uint64_t>&& sizes) {
        for (size_t i = 0; i < msgs.size(); ++i) {
          transfer.note_recovered(msgs[i]);
          manager->add(std::move(msgs[i]), sizes[i], true);
        }
      },
      [&](tern::Result<tern::queue::RecoveryStats> st) {
        if (stopping) return;  // stopped by a signal before the end: the next start reads it all
        if (!st) {
          // Deliveries may be under way, with thread-pool work in flight that refers to the
          // components: exit without unwinding them (nothing unacknowledged is at stake).
          spdlog::critical("ternd: {}", st.error().message);
          spdlog::shutdown();
          std::_Exit(1);
        }
        const auto& stats = st.value();
        spdlog::info("queue: recovered {} message(s), removed {} unfinished, set aside {} malformed, "
                     "left {} for a newer tern, removed {} deleted, removed {} exported",
                     stats.messages, stats.leftovers_removed, stats.corrupt_moved, stats.left_untouched,
                     stats.deleted_removed, stats.exported_removed);
        recovered = true;
        manager->recovery_done();
        transfer.recovery_done();
      });
  while (!listed && !recovered) loop.run_once();

  // A failure from here on may come while recovery (and deliveries of what it has read)
  // still have thread-pool work in flight that refers to the components: exit without
  // unwinding them (no message has been accepted yet).
  auto fail_early = [](const std::string& why) {
    spdlog::critical("ternd: {}", why);
    spdlog::shutdown();
    std::_Exit(1);
  };
  std::unique_ptr<tern::server::Server> server;
  auto gauges = [&] {
    tern::Gauges g;
    g.queue = manager->messages();
    g.held = manager->held();
    const int64_t now = clock.now_us();
    if (const int64_t oldest = manager->oldest_arrival_us()) g.oldest_age_s = (now - oldest) / 1000000;
    g.connections_in = server ? server->connection_count() : 0;
    g.connections_out = agent->workers();
    g.uptime_s = (now - started_us) / 1000000;
    return g;
  };
  auto control = tern::admin::ControlServer::start(loop, cfg->control, *manager, clock, counters, gauges, transfer);
  if (!control) fail_early(control.error().message);

  // Local submission (tern-sendmail). Without its socket ternd still runs: tern-sendmail
  // then leaves messages in the maildrop, which is imported once the socket works.
  auto submit_settings = [](const tern::config::Config& c) {
    return tern::server::LocalSubmission::Settings{c.hostname, c.limits.max_message_size, c.limits.max_recipients};
  };
  auto list_queue = [&] {
    std::string out;
    const int64_t now = clock.now_us();
    for (const auto& e : manager->list()) out += tern::admin::format_queue_line(e, now) + "\n";
    return out;
  };
  auto submission = std::make_unique<tern::server::LocalSubmission>(loop, injector, clock, submit_settings(*cfg), list_queue);
  if (auto st = submission->listen(cfg->submit.socket); !st)
    spdlog::error("ternd: local submission socket is off (tern-sendmail uses the maildrop): {}", st.error().message);
  auto maildrop = std::make_unique<tern::server::Maildrop>(loop, cfg->submit.maildrop, *submission, cfg->hostname,
                                                           cfg->limits.max_message_size, cfg->limits.max_recipients);
  maildrop->start(kMaildropScanMs);

  server = std::make_unique<tern::server::Server>(loop, injector, clock, *cfg, tls_ctx);
  server->set_counters(&counters);
  if (auto st = server->listen(cfg->listen); !st) fail_early(st.error().message);

  std::unique_ptr<tern::io::Signal> sig_term, sig_int, sig_hup;
  std::unique_ptr<tern::io::Timer> watchdog;
  std::unique_ptr<tern::admin::ControlServer> control_server = std::move(control.value());
  std::unique_ptr<tern::metrics::Server> metrics_server;
  if (cfg->metrics_listen) {
    auto m = tern::metrics::Server::start(loop, *cfg->metrics_listen, counters, gauges);
    if (!m) fail_early("metrics.listen: " + m.error().message);
    metrics_server = std::move(m.value());
  }
  tern::config::Config running = *cfg;  // the configuration in force (SIGHUP replaces it)
  auto stop = [&] {
    if (stopping) {
      spdlog::warn("ternd: second stop signal: exiting now");
      spdlog::shutdown();  // write out the queued log lines first
      std::_Exit(0);
    }
    stopping = true;
    spdlog::info("ternd: stop requested");
    tern::service::notify_stopping();
    // Inbound first (no new mail), then outbound (transactions in flight finish).
    server->shutdown([&] {
      scheduler->stop();
      manager->stop();
      agent->shutdown(running.timeouts.shutdown, [&] {
        maildrop.reset();
        submission.reset();
        (*store)->close();
        control_server.reset();
        metrics_server.reset();
        agent->set_sts(nullptr);
        sts_policies.reset();  // aborts policy fetches in flight
        resolver->reset();
        sig_hup.reset();
        sig_int.reset();
        sig_term.reset();
        if (watchdog) watchdog->stop();
        spdlog::info("ternd: stopped");
      });
    });
  };
  std::string config_path = flags->config;
  sig_term = std::make_unique<tern::io::Signal>(loop, SIGTERM, stop);
  sig_int = std::make_unique<tern::io::Signal>(loop, SIGINT, stop);
  // Applies a configuration read by `reload` (on the loop thread).
  auto apply_config = [&](tern::config::Config&& next, tern::delivery::AgentSettings&& settings,
                          std::shared_ptr<const tern::tls::ServerContext> next_tls) {
    if (next.queue_dir != running.queue_dir)
      spdlog::warn("ternd: reload: queue_dir change needs a restart; still using {}", running.queue_dir);
    if (next.auth.verifiers != running.auth.verifiers)
      spdlog::warn("ternd: reload: an auth.verifiers change needs a restart");
    if (next.dns.forwarders != running.dns.forwarders || next.dns.trust_anchor != running.dns.trust_anchor ||
        next.control.socket != running.control.socket)
      spdlog::warn("ternd: reload: dns.forwarders, dns.trust_anchor and control.socket changes need a restart");
    // The forwarders may have changed their ways (or been fixed): validation is checked again.
    (*resolver)->probe();
    {
      const auto &a = next.mta_sts, &b = running.mta_sts;
      if (a.enabled != b.enabled || a.cache_dir != b.cache_dir || a.ca_file != b.ca_file ||
          a.https_port != b.https_port || a.timeout != b.timeout)
        spdlog::warn("ternd: reload: mta_sts changes need a restart");
    }
    for (const auto& w : next.warnings) spdlog::warn("ternd: config: {}", w);
    server->apply(next, std::move(next_tls));
    submission->set_settings(submit_settings(next));
    // New listeners open (below 1024 too: CAP_NET_BIND_SERVICE is kept), removed ones close;
    // sessions in progress go on.
    if (auto st = server->listen(next.listen); !st)
      spdlog::error("ternd: reload: {}; the other listeners are in place", st.error().message);
    scheduler->apply(limits(next));
    manager->apply(qmgr_settings(next));
    notifier.apply(notifier_settings(next));
    auto transfer_next = transfer_settings(next);
    transfer_next.queue_dir = running.queue_dir;  // a queue_dir change needs a restart
    transfer.apply(std::move(transfer_next));
    agent->apply(std::move(settings));
    (*store)->set_min_free(next.queue_min_free);
    check_fd_budget(next, fds);
    spdlog::set_level(spdlog::level::from_str(next.log_level));
    if (next.log_json != running.log_json) {
      const char* journal = std::getenv("JOURNAL_STREAM");
      spdlog::default_logger()->set_formatter(tern::make_log_formatter(
          next.log_json ? tern::LogFormat::Json : tern::LogFormat::Text, journal && *journal));
    }
    running = std::move(next);
    spdlog::info("ternd: configuration reloaded from {}", config_path);
  };
  // SIGHUP: the YAML, the recipients files and the interface addresses (make_self) are read
  // on the thread pool, never on the loop; the result is applied back on the loop. A SIGHUP
  // during a reload runs one more reload after it (the file may have changed again).
  bool reload_running = false, reload_again = false;
  std::shared_ptr<const tern::tls::ServerContext> server_tls = tls_ctx;  // the certificate in use
  std::function<void()> reload = [&] {
    if (reload_running) {
      reload_again = true;
      return;
    }
    reload_running = true;
    tern::service::notify_reloading();
    struct Loaded {
      std::optional<tern::Result<tern::config::Config>> config;
      std::optional<tern::delivery::AgentSettings> settings;
      std::shared_ptr<const tern::tls::ServerContext> tls;
      std::string tls_error;
    };
    auto loaded = std::make_shared<Loaded>();
    loop.queue_work(
        [loaded, config_path, agent_settings] {
          loaded->config.emplace(tern::config::load_file(config_path));
          if (!*loaded->config) return;
          loaded->settings.emplace(agent_settings(loaded->config->value()));
          // Reported only: the verifiers re-read the users file themselves when it changes
          // (and answer 454 while it is broken).
          std::string why;
          if (!users_file_ok(loaded->config->value(), [](const std::string& w) { spdlog::warn("ternd: {}", w); }, why))
            spdlog::error("ternd: reload: {}", why);
          const auto& t = loaded->config->value().tls;
          if (t.cert.empty()) return;
          auto ctx = tern::tls::ServerContext::load(t.cert, t.key);
          if (ctx) loaded->tls = std::move(ctx.value());
          else loaded->tls_error = ctx.error().message;
        },
        [&, loaded] {
          reload_running = false;
          if (stopping) return;
          if (!*loaded->config)
            spdlog::error("ternd: reload failed, keeping the running configuration: {}",
                          loaded->config->error().message);
          else {
            auto tls = loaded->tls;
            if (!loaded->tls_error.empty()) {
              // A bad certificate file must not take TLS down: the running one stays.
              spdlog::error("ternd: reload: tls: {}; keeping the certificate in use", loaded->tls_error);
              tls = server_tls;
            } else if (tls) {
              spdlog::info("ternd: TLS certificate loaded: {}", tls->description());
            }
            server_tls = tls;
            apply_config(std::move(loaded->config->value()), std::move(*loaded->settings), std::move(tls));
          }
          if (std::exchange(reload_again, false)) return reload();
          tern::service::notify_ready("accepting mail; " + std::to_string(manager->messages()) + " message(s) queued");
        });
  };
  sig_hup = std::make_unique<tern::io::Signal>(loop, SIGHUP, [&] { reload(); });

  spdlog::info("ternd: ready");
  tern::service::notify_ready("accepting mail; " + std::to_string(manager->messages()) + " message(s) queued");
  // The watchdog is pinged from the loop itself: a stuck loop stops the pings.
  if (const uint64_t wd = tern::service::watchdog_interval_us()) {
    watchdog = std::make_unique<tern::io::Timer>(loop);
    const uint64_t every_ms = std::max<uint64_t>(wd / 2000, 1);
    watchdog->start(every_ms, every_ms, [] { tern::service::notify_watchdog(); });
    spdlog::info("ternd: systemd watchdog every {} ms", every_ms);
  }
  loop.run();
  server.reset();
  agent.reset();
  manager.reset();
  scheduler.reset();
  return 0;
}

int main(int argc, char** argv) {
  const int rc = run(argc, argv);
  spdlog::shutdown();  // the logging thread writes out every queued line before exit
  return rc;
}
