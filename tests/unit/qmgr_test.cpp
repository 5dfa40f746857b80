// The queue manager and the scheduler on a manual clock: retry timing and backoff, expiry,
// delay warnings, destination probing, recovery decisions. Milliseconds, not hours.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "fakes.hpp"
#include "qmgr/manager.hpp"
#include "queue/codec.hpp"
#include "scheduler/scheduler.hpp"

using namespace tern;

namespace {

constexpr int64_t kS = 1000000;
constexpr int64_t kT0 = 1'800'000'000 * kS;

struct Opened {
  scheduler::Destination dest;
  scheduler::JobId job;
};

class Dispatcher final : public scheduler::Dispatcher {
 public:
  void open(const scheduler::Destination& d, scheduler::JobId first) override { opened.push_back({d, first}); }
  std::vector<Opened> opened;
};

struct World {
  ManualClock clock{kT0};
  fake::ManualAlarm sched_alarm{clock}, notice_alarm{clock};
  fake::Files files;
  fake::Notices notices;
  Dispatcher dispatcher;
  config::Delivery delivery;
  std::unique_ptr<scheduler::Scheduler> sched;
  std::unique_ptr<qmgr::Manager> mgr;

  explicit World(config::Delivery d = {}) : delivery(d) {
    sched = std::make_unique<scheduler::Scheduler>(
        sched_alarm, clock, scheduler::Limits{d.max_in_flight, d.max_per_destination, d.retry}, 7);
    sched->set_dispatcher(&dispatcher);
    mgr = std::make_unique<qmgr::Manager>(clock, files, *sched, notices, notice_alarm,
                                          qmgr::Settings{d, {}, "postmaster@example.net"}, 7);
  }
  void advance_to(int64_t t) {
    clock.advance_us(t - clock.now_us());
    sched_alarm.poll();
  }
  // Runs the alarm if it is due now, and returns the jobs dispatched by it.
  std::vector<Opened> due() {
    dispatcher.opened.clear();
    sched_alarm.poll();
    return dispatcher.opened;
  }
  // Attempts `job` and ends it with one outcome for every recipient; the connection closes.
  void attempt(const Opened& o, Outcome out, bool reached = true) {
    auto req = mgr->begin(o.job);
    REQUIRE(req.has_value());
    mgr->report(o.job, std::vector<Outcome>(req->rcpts.size(), out), clock.now_us());
    sched->closed(o.dest.key, reached, out.text);
  }
};

queue::Envelope message(std::string id, std::vector<std::string> rcpts, std::string sender = "a@example.org") {
  queue::Envelope e;
  e.id = std::move(id);
  e.arrival_us = kT0;
  e.sender = std::move(sender);
  for (auto& r : rcpts) {
    queue::Recipient x;
    x.address = std::move(r);
    e.recipients.push_back(std::move(x));
  }
  return e;
}

Outcome deferred() { return Outcome::make(Fate::Deferred, "4.4.1", "451 4.4.1 try later", true); }
Outcome failed() { return Outcome::make(Fate::Failed, "5.1.1", "550 5.1.1 no such user", true); }
Outcome delivered() { return Outcome::make(Fate::Delivered, "2.0.0", "250 ok", true); }

}  // namespace

TEST_CASE("qmgr: a new message is dispatched at once, one job per destination") {
  World w;
  w.mgr->recovery_done();
  w.mgr->add(message("M1", {"x@a.example", "y@a.example", "z@b.example"}), 100, false);
  auto o = w.due();
  REQUIRE(o.size() == 2);
  auto r1 = w.mgr->begin(o[0].job);
  auto r2 = w.mgr->begin(o[1].job);
  REQUIRE(r1);
  REQUIRE(r2);
  CHECK(r1->rcpts.size() + r2->rcpts.size() == 3);
  CHECK(r1->path == "/queue/msg/M1");
  w.mgr->report(o[0].job, std::vector<Outcome>(r1->rcpts.size(), delivered()), w.clock.now_us());
  w.mgr->report(o[1].job, std::vector<Outcome>(r2->rcpts.size(), delivered()), w.clock.now_us());
  CHECK(w.files.appended["M1"].find("delivered") != std::string::npos);
  REQUIRE(w.files.removed.size() == 1);
  CHECK(w.files.removed[0] == "M1");
  CHECK(w.mgr->messages() == 0);
  CHECK(w.sched->jobs() == 0);
}

TEST_CASE("qmgr: deferrals back off exponentially (with jitter) and are recorded first") {
  config::Delivery d;
  d.retry = {config::Seconds(300), config::Seconds(3600), 2.0};
  World w(d);
  w.mgr->recovery_done();
  w.mgr->add(message("M1", {"x@a.example"}), 100, false);
  int64_t expect = 300;
  for (int attempt = 1; attempt <= 6; ++attempt) {
    auto o = w.due();
    REQUIRE(o.size() == 1);
    const size_t before = w.files.appends;
    w.attempt(o[0], deferred());
    CHECK(w.files.appends == before + 1);  // the deferral is durable before the retry exists
    REQUIRE(w.sched_alarm.armed());
    const int64_t wait_s = (w.sched_alarm.at() - w.clock.now_us()) / kS;
    CHECK(wait_s >= expect * 9 / 10);
    CHECK(wait_s <= expect * 11 / 10 + 1);
    expect = std::min<int64_t>(expect * 2, 3600);
    // Nothing is due a second early.
    w.clock.advance_us(w.sched_alarm.at() - w.clock.now_us() - kS);
    CHECK(w.due().empty());
    w.clock.advance_us(kS);
  }
  CHECK(w.files.appended["M1"].find("status 0 deferred") != std::string::npos);
}

TEST_CASE("qmgr: past max_queue_time a deferred recipient fails with 5.4.7 and bounces once") {
  config::Delivery d;
  d.max_queue_time = config::Seconds(3600);
  d.retry = {config::Seconds(1000), config::Seconds(1000), 1.0};
  World w(d);
  w.mgr->recovery_done();
  w.mgr->add(message("M1", {"x@a.example"}), 100, false);
  for (int i = 0; i < 10 && w.mgr->messages() > 0; ++i) {
    auto o = w.due();
    if (o.empty()) {
      w.advance_to(w.sched_alarm.at());
      continue;
    }
    auto req = w.mgr->begin(o[0].job);
    if (!req) {  // expired before the attempt: no connection is made
      w.sched->closed(o[0].dest.key, true, "");
      continue;
    }
    w.mgr->report(o[0].job, {deferred()}, w.clock.now_us());
    w.sched->closed(o[0].dest.key, true, "");
    w.clock.advance_us(w.sched_alarm.at() - w.clock.now_us());
  }
  CHECK(w.mgr->messages() == 0);
  const std::string& rec = w.files.appended["M1"];
  CHECK(rec.find(" failed ") != std::string::npos);
  CHECK(rec.find("Delivery time expired") != std::string::npos);
  CHECK(rec.find("failed-notified") != std::string::npos);
  CHECK(w.notices.count(bounce::NoticeKind::Failure) == 1);
}

TEST_CASE("qmgr: one delay warning after delivery.delay_warning, never repeated") {
  config::Delivery d;
  d.delay_warning = config::Seconds(3600);
  d.retry = {config::Seconds(1200), config::Seconds(1200), 1.0};
  World w(d);
  w.mgr->recovery_done();
  w.mgr->add(message("M1", {"x@a.example"}), 100, false);
  for (int i = 0; i < 8; ++i) {
    auto o = w.due();
    REQUIRE(o.size() == 1);
    w.attempt(o[0], deferred());
    if (w.clock.now_us() - kT0 < 3600 * kS) CHECK(w.notices.count(bounce::NoticeKind::Delay) == 0);
    w.clock.advance_us(w.sched_alarm.at() - w.clock.now_us());
  }
  CHECK(w.notices.count(bounce::NoticeKind::Delay) == 1);
  const std::string& rec = w.files.appended["M1"];
  CHECK(rec.find("delay-warned") != std::string::npos);
}

TEST_CASE("scheduler: parallel failures to one destination count as one round (backoff stays short)") {
  config::Delivery d;
  d.retry = {config::Seconds(300), config::Seconds(3600), 2.0};
  d.max_per_destination = 10;
  World w(d);
  w.mgr->recovery_done();
  for (int i = 0; i < 12; ++i) w.mgr->add(message("M" + std::to_string(i), {"x@down.example"}), 100, false);
  auto o = w.due();
  REQUIRE(o.size() == 10);  // max_per_destination
  // Every connection fails to reach the destination; each reports its own job first.
  for (const auto& x : o) w.attempt(x, Outcome::make(Fate::Deferred, "4.4.1", "connect failed"), false);
  CHECK(w.sched->destination_down("mx:down.example"));
  // The two jobs that were ready were parked (deferred without an attempt).
  CHECK(w.files.appended["M10"].find("is down") != std::string::npos);
  CHECK(w.files.appended["M11"].find("is down") != std::string::npos);
  // One round of failures: the destination waits about the first backoff step, not the
  // tenth (which would be the 3600 s cap).
  REQUIRE(w.sched_alarm.armed());
  const int64_t wait_s = (w.sched_alarm.at() - w.clock.now_us()) / kS;
  CHECK(wait_s <= 330 * 2 + 1);
  // When it is due, one probe connection goes out, not ten.
  w.dispatcher.opened.clear();
  for (int i = 0; i < 20 && w.sched_alarm.armed(); ++i) {
    MESSAGE("t=" << (w.sched_alarm.at() - kT0) / kS << " opened=" << w.dispatcher.opened.size());
    w.advance_to(w.sched_alarm.at());
  }
  CHECK(w.dispatcher.opened.size() == 1);
}

TEST_CASE("qmgr: recovery: no notice before every file is read; a bounce already queued is recorded, not resent") {
  World w;
  auto orig = message("M1", {"x@a.example", "y@a.example"});
  orig.recipients[0].state = queue::RcptState::Failed;
  orig.recipients[0].last_reply = "550 5.1.1 gone";
  orig.recipients[1].state = queue::RcptState::Failed;
  w.mgr->add(orig, 100, true);
  CHECK(w.notices.sent.empty());  // still recovering
  auto bounce = message("B1", {"a@example.org"}, "");
  bounce.notice_for = "M1";
  bounce.notice_rcpts = {0};
  w.mgr->add(bounce, 100, true);
  CHECK(w.notices.sent.empty());
  w.mgr->recovery_done();
  // Recipient 0's bounce was queued before the crash: only recorded. Recipient 1 gets one.
  REQUIRE(w.notices.sent.size() == 1);
  CHECK(w.notices.sent[0].idx == std::vector<size_t>{1});
  const std::string& rec = w.files.appended["M1"];
  CHECK(rec.find("status 0 failed-notified") != std::string::npos);
  CHECK(rec.find("status 1 failed-notified") != std::string::npos);
  CHECK(std::find(w.files.removed.begin(), w.files.removed.end(), "M1") != w.files.removed.end());
}

TEST_CASE("qmgr: notices committed at runtime leave nothing behind") {
  World w;
  w.mgr->recovery_done();
  auto bounce = message("B1", {"a@example.org"}, "");
  bounce.notice_for = "M0";
  bounce.notice_rcpts = {0};
  w.mgr->add(bounce, 100, false);
  CHECK(w.mgr->covered_entries() == 0);
}

TEST_CASE("qmgr: a failed notice is tried again later, and the original stays until then") {
  World w;
  w.mgr->recovery_done();
  w.notices.ok = false;
  w.mgr->add(message("M1", {"x@a.example"}), 100, false);
  auto o = w.due();
  REQUIRE(o.size() == 1);
  w.attempt(o[0], failed());
  CHECK(w.notices.count(bounce::NoticeKind::Failure) == 1);
  CHECK(w.files.removed.empty());
  REQUIRE(w.notice_alarm.armed());
  w.notices.ok = true;
  w.clock.advance_us(w.notice_alarm.at() - w.clock.now_us());
  w.notice_alarm.poll();
  CHECK(w.notices.count(bounce::NoticeKind::Failure) == 2);
  CHECK(w.files.removed == std::vector<std::string>{"M1"});
}

TEST_CASE("qmgr: 452 too many recipients goes into a new transaction at once") {
  World w;
  w.mgr->recovery_done();
  w.mgr->add(message("M1", {"x@a.example", "y@a.example"}), 100, false);
  auto o = w.due();
  REQUIRE(o.size() == 1);
  auto req = w.mgr->begin(o[0].job);
  REQUIRE(req);
  w.mgr->report(o[0].job, {delivered(), Outcome::make(Fate::RetryNow, "4.5.3", "452 4.5.3 too many", true)},
                w.clock.now_us());
  w.sched->closed(o[0].dest.key, true, "");
  auto again = w.due();
  REQUIRE(again.size() == 1);
  auto r2 = w.mgr->begin(again[0].job);
  REQUIRE(r2);
  CHECK(r2->rcpts == std::vector<std::string>{"y@a.example"});
}

#ifdef NDEBUG
TEST_CASE("qmgr: a report with the wrong number of outcomes loses no recipient") {
  World w;
  w.mgr->recovery_done();
  w.mgr->add(message("M1", {"x@a.example", "y@a.example"}), 100, false);
  auto o = w.due();
  REQUIRE(o.size() == 1);
  REQUIRE(w.mgr->begin(o[0].job));
  w.mgr->report(o[0].job, {delivered()}, w.clock.now_us());  // one outcome for two
  w.sched->closed(o[0].dest.key, true, "");
  // The second recipient is still scheduled, not forgotten.
  CHECK(w.mgr->messages() == 1);
  CHECK(w.sched->jobs() == 1);
}
#endif

TEST_CASE("qmgr: a transaction that delivers the last open recipients removes the file without a record first") {
  World w;
  w.mgr->recovery_done();
  w.mgr->add(message("M1", {"x@a.example"}), 100, false);
  auto o = w.due();
  REQUIRE(o.size() == 1);
  w.attempt(o[0], delivered());
  CHECK(w.files.appends == 0);  // no "delivered" record and fdatasync before the removal
  CHECK(w.files.removed == std::vector<std::string>{"M1"});
  // NOTIFY=SUCCESS to a next hop without DSN owes a "relayed" notice: recorded first.
  auto m2 = message("M2", {"y@a.example"});
  m2.recipients[0].params = {"NOTIFY=SUCCESS"};
  w.mgr->add(m2, 100, false);
  auto o2 = w.due();
  REQUIRE(o2.size() == 1);
  w.attempt(o2[0], delivered());
  CHECK(w.files.appended["M2"].find("status 0 delivered") != std::string::npos);
  CHECK(w.notices.count(bounce::NoticeKind::Relayed) == 1);
}

TEST_CASE("qmgr: while recovering, a bounce read back waits, and relayed notices wait with their message") {
  World w;
  auto bounce = message("B1", {"a@example.org"}, "");
  bounce.notice_for = "M1";
  bounce.notice_rcpts = {0};
  w.mgr->add(bounce, 100, true);
  auto m2 = message("M2", {"y@a.example"});
  m2.recipients[0].params = {"NOTIFY=SUCCESS"};
  w.mgr->add(m2, 100, true);
  w.clock.advance_us(3 * kS);  // past the restart jitter
  auto o = w.due();
  REQUIRE(o.size() == 1);  // M2 only: the bounce is not scheduled before recovery is done
  auto req = w.mgr->begin(o[0].job);
  REQUIRE(req);
  CHECK(req->msg_id == "M2");
  w.mgr->report(o[0].job, {delivered()}, w.clock.now_us());
  w.sched->closed(o[0].dest.key, true, "");
  CHECK(w.notices.count(bounce::NoticeKind::Relayed) == 0);
  CHECK(w.files.removed.empty());  // kept: its notice is still owed
  w.mgr->recovery_done();
  CHECK(w.notices.count(bounce::NoticeKind::Relayed) == 1);
  CHECK(w.files.removed == std::vector<std::string>{"M2"});
  auto later = w.due();
  REQUIRE(later.size() == 1);  // now the bounce goes
  CHECK(w.mgr->begin(later[0].job)->msg_id == "B1");
}

TEST_CASE("qmgr: a failed removal keeps the message, records its state and tries again") {
  World w;
  w.mgr->recovery_done();
  w.mgr->add(message("M1", {"x@a.example"}), 100, false);
  w.files.fail_remove = true;
  auto o = w.due();
  REQUIRE(o.size() == 1);
  w.attempt(o[0], delivered());
  CHECK(w.mgr->messages() == 1);  // not forgotten
  CHECK(w.files.appended["M1"].find("status 0 delivered") != std::string::npos);
  REQUIRE(w.notice_alarm.armed());
  w.clock.advance_us(w.notice_alarm.at() - w.clock.now_us());
  w.notice_alarm.poll();
  CHECK(w.files.removed == std::vector<std::string>{"M1"});
  CHECK(w.mgr->messages() == 0);
}

namespace {
std::vector<qmgr::AdminResult> run_admin(World& w, qmgr::AdminOp op, qmgr::Selector sel) {
  std::vector<qmgr::AdminResult> got;
  bool called = false;
  w.mgr->admin(op, sel, "uid=0", [&](std::vector<qmgr::AdminResult> r) {
    got = std::move(r);
    called = true;
  });
  REQUIRE(called);  // the fake completes every write at once
  return got;
}
qmgr::Selector ids(std::vector<std::string> v) {
  qmgr::Selector s;
  s.ids = std::move(v);
  return s;
}
}  // namespace

TEST_CASE("qmgr: a held message is never attempted, still expires and bounces; release makes it due") {
  config::Delivery d;
  d.max_queue_time = config::Seconds(3600);
  d.retry = {config::Seconds(60), config::Seconds(60), 1.0};
  World w(d);
  w.mgr->recovery_done();
  w.mgr->add(message("M1", {"x@a.example"}), 100, false);
  w.mgr->add(message("M2", {"y@a.example"}), 100, false);
  for (auto& o : w.due()) w.attempt(o, deferred());
  auto r = run_admin(w, qmgr::AdminOp::Hold, ids({"M1", "M9"}));
  REQUIRE(r.size() == 2);
  CHECK(r[0].id == "M9");
  CHECK(r[0].error == "no such message");
  CHECK(r[1].done == "held");
  CHECK(w.files.appended["M1"].find("!held ") != std::string::npos);
  // A flush makes everything due, but the held job goes back to wait for its expiry.
  w.sched->flush();
  for (int i = 0; i < 5; ++i) {
    for (auto& o : w.due()) {
      auto req = w.mgr->begin(o.job);
      if (req) {
        CHECK(req->msg_id != "M1");
        w.mgr->report(o.job, std::vector<Outcome>(req->rcpts.size(), deferred()), w.clock.now_us());
      }
      w.sched->closed(o.dest.key, true, "");
    }
    w.clock.advance_us(61 * kS);
  }
  // At its expiry it bounces like any message too old, held or not.
  w.clock.advance_us(kT0 + 3601 * kS - w.clock.now_us());
  for (int i = 0; i < 5; ++i) {
    for (auto& o : w.due()) {
      auto req = w.mgr->begin(o.job);
      if (req) w.mgr->report(o.job, std::vector<Outcome>(req->rcpts.size(), deferred()), w.clock.now_us());
      w.sched->closed(o.dest.key, true, "");
    }
    w.clock.advance_us(61 * kS);
  }
  CHECK(w.files.appended["M1"].find("Delivery time expired") != std::string::npos);
  CHECK(w.notices.count(bounce::NoticeKind::Failure) >= 1);

  World v(d);
  v.mgr->recovery_done();
  v.mgr->add(message("M3", {"z@b.example"}), 100, false);
  CHECK(run_admin(v, qmgr::AdminOp::Release, ids({"M3"}))[0].error == "not held");
  CHECK(run_admin(v, qmgr::AdminOp::Hold, ids({"M3"}))[0].done == "held");
  auto o = v.due();
  REQUIRE(o.size() == 1);
  CHECK_FALSE(v.mgr->begin(o[0].job).has_value());  // held: back to wait
  v.sched->closed(o[0].dest.key, true, "");
  CHECK(v.due().empty());
  CHECK(run_admin(v, qmgr::AdminOp::Release, ids({"M3"}))[0].done == "released");
  CHECK(v.files.appended["M3"].find("!released ") != std::string::npos);
  auto again = v.due();
  REQUIRE(again.size() == 1);
  CHECK(v.mgr->begin(again[0].job).has_value());
}

TEST_CASE("qmgr: delete writes !deleted first, cancels the attempt in flight, removes the file, no bounce") {
  World w;
  w.mgr->recovery_done();
  std::vector<qmgr::JobId> cancelled;
  w.mgr->set_canceller([&](qmgr::JobId j) { cancelled.push_back(j); });
  w.mgr->add(message("M1", {"x@a.example"}), 100, false);
  w.mgr->add(message("M2", {"y@b.example"}, "b@example.org"), 100, false);
  auto o = w.due();
  REQUIRE(o.size() == 2);
  auto req = w.mgr->begin(o[0].job);  // in flight
  REQUIRE(req.has_value());
  const std::string flying = req->msg_id;
  qmgr::Selector all;
  all.all = true;
  std::vector<std::string> unknown;
  CHECK(w.mgr->select(all, unknown).size() == 2);
  qmgr::Selector by_sender;
  by_sender.sender = "B@example.org";
  CHECK(w.mgr->select(by_sender, unknown) == std::vector<std::string>{"M2"});
  qmgr::Selector by_domain;
  by_domain.domain = "a.example";
  CHECK(w.mgr->select(by_domain, unknown) == std::vector<std::string>{"M1"});

  auto r = run_admin(w, qmgr::AdminOp::Delete, ids({flying}));
  CHECK(r[0].done == "deleted");
  CHECK(w.files.appended[flying].find("!deleted ") != std::string::npos);
  CHECK(std::find(w.files.removed.begin(), w.files.removed.end(), flying) != w.files.removed.end());
  CHECK(cancelled == std::vector<qmgr::JobId>{o[0].job});
  // A late report from the cancelled attempt changes nothing.
  w.mgr->report(o[0].job, {failed()}, w.clock.now_us());
  CHECK(w.mgr->messages() == 1);
  CHECK(w.notices.count(bounce::NoticeKind::Failure) == 0);
  CHECK(w.mgr->envelope(flying) == nullptr);
}

namespace {
// The scheduler alone, every job to one destination, no connection limit in the way.
struct SchedOnly {
  ManualClock clock{kT0};
  fake::ManualAlarm alarm{clock};
  Dispatcher dispatcher;
  scheduler::Scheduler sched{alarm, clock, scheduler::Limits{100000, 100000, {}}, 7};
  scheduler::Destination dest{"route:127.0.0.1:25", true, "x.example", "127.0.0.1", 25};
  SchedOnly() { sched.set_dispatcher(&dispatcher); }
  std::vector<scheduler::JobId> run_until(int64_t t) {
    dispatcher.opened.clear();
    for (int i = 0; i < 100000 && alarm.armed() && alarm.at() <= t; ++i) {
      clock.advance_us(std::max<int64_t>(0, alarm.at() - clock.now_us()));
      alarm.poll();
    }
    clock.advance_us(std::max<int64_t>(0, t - clock.now_us()));
    std::vector<scheduler::JobId> ids;
    for (const auto& o : dispatcher.opened) ids.push_back(o.job);
    return ids;
  }
};
}  // namespace

TEST_CASE("scheduler: jobs come due in due-time order; a job finished while waiting never comes due") {
  SchedOnly s;
  // Due times out of order, as recovered mail with restart jitter comes in.
  const std::vector<int64_t> offsets = {7, 3, 9, 1, 5, 3, 8, 2, 6, 4};
  for (size_t i = 0; i < offsets.size(); ++i) s.sched.add(i + 1, s.dest, kT0 + offsets[i] * kS);
  s.sched.finished(4);  // due first (offset 1): its entry must not dispatch anything
  s.sched.finished(3);  // due last (offset 9)
  REQUIRE(s.alarm.armed());
  CHECK(s.alarm.at() == kT0 + 2 * kS);  // the earliest job still waiting, not the finished one
  std::vector<scheduler::JobId> order;
  for (int64_t t = 1; t <= 10; ++t) {
    auto got = s.run_until(kT0 + t * kS);
    for (auto id : got) CHECK(offsets[id - 1] == t);
    order.insert(order.end(), got.begin(), got.end());
  }
  CHECK(order.size() == offsets.size() - 2);
  CHECK(std::find(order.begin(), order.end(), 3) == order.end());
  CHECK(std::find(order.begin(), order.end(), 4) == order.end());
  CHECK_FALSE(s.alarm.armed());  // nothing left waiting, stale entries included
}

TEST_CASE("scheduler: flush makes every waiting job due at once, not the finished ones") {
  SchedOnly s;
  for (scheduler::JobId id = 1; id <= 5; ++id) s.sched.add(id, s.dest, kT0 + int64_t(id) * 60 * kS);
  s.sched.finished(2);
  s.sched.flush();
  auto got = s.run_until(kT0);
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<scheduler::JobId>{1, 3, 4, 5});
  CHECK(s.run_until(kT0 + 3600 * kS).empty());  // no second dispatch from old entries
  CHECK_FALSE(s.sched.due(2).has_value());
}

TEST_CASE("qmgr: export holds, waits for the attempt in flight, then records !exported before the removal") {
  World w;
  w.mgr->recovery_done();
  std::vector<qmgr::JobId> cancelled;
  w.mgr->set_canceller([&](qmgr::JobId j) { cancelled.push_back(j); });
  w.mgr->add(message("M1", {"x@a.example"}), 100, false);
  w.mgr->add(message("M2", {"y@b.example", "z@c.example"}), 100, false);
  w.mgr->add(message("M3", {"v@d.example"}), 100, false);
  auto o = w.due();
  REQUIRE(o.size() == 4);
  // M1 and one of M2's transactions are in flight when the export starts; the other waits.
  std::map<std::string, Opened> flying;
  for (const auto& x : o) {
    auto req = w.mgr->begin(x.job);
    REQUIRE(req.has_value());
    if (req->msg_id == "M1" || (req->msg_id == "M2" && req->rcpts[0] == "y@b.example")) flying[req->rcpts[0]] = x;
    else w.mgr->report(x.job, {deferred()}, w.clock.now_us());
  }
  REQUIRE(flying.size() == 2);
  CHECK(run_admin(w, qmgr::AdminOp::Hold, ids({"M3"}))[0].done == "held");

  std::vector<qmgr::ExportItem> ready;
  std::vector<qmgr::AdminResult> skipped;
  bool called = false;
  qmgr::Selector all;
  all.all = true;
  w.mgr->export_prepare(all, "uid=0", [&](std::vector<qmgr::ExportItem> i, std::vector<qmgr::AdminResult> r) {
    ready = std::move(i);
    skipped = std::move(r);
    called = true;
  });
  CHECK(!called);  // attempts in flight
  CHECK(w.files.appended["M1"].find("!held ") != std::string::npos);
  CHECK(w.files.appended["M2"].find("!held ") != std::string::npos);
  CHECK(cancelled.empty());  // waited for, never cancelled
  // No other command touches a message being exported.
  CHECK(run_admin(w, qmgr::AdminOp::Delete, ids({"M1"}))[0].error == "being exported");
  // M2's attempt delivers y (recorded, still exported: z is open); M1's delivers its only
  // recipient, so M1 is not exported.
  w.mgr->report(flying["y@b.example"].job, {Outcome::make(Fate::Delivered, "2.0.0", "250 ok", true)},
                w.clock.now_us());
  CHECK(!called);
  w.mgr->report(flying["x@a.example"].job, {Outcome::make(Fate::Delivered, "2.0.0", "250 ok", true)},
                w.clock.now_us());
  REQUIRE(called);
  REQUIRE(ready.size() == 2);
  CHECK(ready[0].id == "M2");
  CHECK(!ready[0].was_held);
  CHECK(ready[1].id == "M3");
  CHECK(ready[1].was_held);
  REQUIRE(skipped.size() == 1);
  CHECK(skipped[0].id == "M1");
  CHECK(skipped[0].done.starts_with("not exported"));
  CHECK(w.mgr->envelope("M2")->recipients[0].state == queue::RcptState::Delivered);
  // While the archive is written, a flush starts no attempt for them (held).
  w.mgr->flush();
  for (const auto& x : w.due()) CHECK(!w.mgr->begin(x.job).has_value());

  // M2 is in the archive, M3 could not be read: M2 goes, M3 stays held as it was.
  std::vector<qmgr::AdminResult> finished;
  bool done = false;
  w.mgr->export_finish({ready[0]}, {ready[1]}, "uid=0", [&](std::vector<qmgr::AdminResult> r) {
    finished = std::move(r);
    done = true;
  });
  REQUIRE(done);
  REQUIRE(finished.size() == 1);
  CHECK(finished[0].done == "exported");
  const std::string& m2 = w.files.appended["M2"];
  CHECK(m2.find("!exported ") > m2.find("!held "));
  CHECK(std::find(w.files.removed.begin(), w.files.removed.end(), "M2") != w.files.removed.end());
  CHECK(w.mgr->envelope("M2") == nullptr);
  CHECK(w.mgr->envelope("M3")->held);
  CHECK(w.files.appended["M3"].find("!released") == std::string::npos);
  CHECK(run_admin(w, qmgr::AdminOp::Release, ids({"M3"}))[0].done == "released");
  CHECK(w.notices.count(bounce::NoticeKind::Failure) == 0);
}

TEST_CASE("qmgr: a message not written into the archive is released again and delivered here") {
  World w;
  w.mgr->recovery_done();
  w.mgr->add(message("M1", {"x@a.example"}), 100, false);
  auto o = w.due();
  REQUIRE(o.size() == 1);
  w.attempt(o[0], deferred());
  std::vector<qmgr::ExportItem> ready;
  qmgr::Selector sel = ids({"M1"});
  w.mgr->export_prepare(sel, "uid=0", [&](std::vector<qmgr::ExportItem> i, std::vector<qmgr::AdminResult>) {
    ready = std::move(i);
  });
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].next_attempt_us > w.clock.now_us());
  CHECK(w.mgr->envelope("M1")->held);
  bool done = false;
  w.mgr->export_finish({}, ready, "uid=0", [&](std::vector<qmgr::AdminResult> r) {
    CHECK(r.empty());
    done = true;
  });
  REQUIRE(done);
  CHECK(!w.mgr->envelope("M1")->held);
  CHECK(w.files.appended["M1"].find("!released ") != std::string::npos);
  CHECK(w.due().size() == 1);  // due at once again
}
