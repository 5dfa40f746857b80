// The delivery connection driver on a manual clock, with a fake resolver and fake
// transports: per-state deadlines (a dripping peer does not extend them), failover to the
// next address, the body streamed piece by piece on drain events, the data_block progress
// rule. Only the queue file read runs for real (the thread pool), on a temporary file.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include "delivery/agent.hpp"
#include "sts/source.hpp"
#include "fakes.hpp"
#include "delivery/connection.hpp"
#include "queue/codec.hpp"
#include "smtp/data_encoder.hpp"

using namespace tern;

namespace {

constexpr int64_t kS = 1000000;

std::set<class TestAlarm*>& alarms() {
  static std::set<TestAlarm*> s;
  return s;
}

// A manual alarm that the test can find (every live one is polled by poll_alarms()).
class TestAlarm final : public fake::ManualAlarm {
 public:
  explicit TestAlarm(const ManualClock& c) : ManualAlarm(c) { alarms().insert(this); }
  ~TestAlarm() override { alarms().erase(this); }
};

void poll_alarms() {
  for (int round = 0; round < 100; ++round) {
    bool any = false;
    for (TestAlarm* a : std::vector<TestAlarm*>(alarms().begin(), alarms().end()))
      if (alarms().count(a)) any |= a->poll();
    if (!any) return;
  }
}

class FakeResolver final : public dns::Resolver {
 public:
  void resolve_mx(const std::string& domain, std::function<void(dns::MxAnswer)> cb) override {
    pending.push_back([this, domain, cb] { cb(mx.at(domain)); });
  }
  void resolve_addr(const std::string& host, bool v6, std::function<void(dns::AddrAnswer)> cb) override {
    pending.push_back([this, host, v6, cb] {
      dns::AddrAnswer a;
      auto it = addrs.find(host);
      a.rcode = it == addrs.end() || v6 ? dns::Rcode::NoData : dns::Rcode::Ok;
      if (a.rcode == dns::Rcode::Ok) a.addresses = it->second;
      a.secure = secure_hosts.count(host) > 0;
      cb(a);
    });
  }
  // Unknown names: a secure proof that there are none.
  void resolve_tlsa(const std::string& name, std::function<void(dns::TlsaAnswer)> cb) override {
    tlsa_asked.push_back(name);
    pending.push_back([this, name, cb] {
      dns::TlsaAnswer a;
      a.rcode = dns::Rcode::NoData;
      a.secure = true;
      if (auto it = tlsa.find(name); it != tlsa.end()) a = it->second;
      cb(a);
    });
  }
  void resolve_txt(const std::string& name, std::function<void(dns::TxtAnswer)> cb) override {
    pending.push_back([this, name, cb] {
      dns::TxtAnswer a;
      auto it = txt.find(name);
      a.rcode = it == txt.end() ? dns::Rcode::NxDomain : dns::Rcode::Ok;
      if (it != txt.end()) a.records = it->second;
      cb(a);
    });
  }
  void flush() {
    for (int i = 0; i < 10 && !pending.empty(); ++i) {
      auto p = std::move(pending);
      pending.clear();
      for (auto& f : p) f();
    }
  }
  std::map<std::string, dns::MxAnswer> mx;
  std::map<std::string, std::vector<IpAddress>> addrs;
  std::set<std::string> secure_hosts;  // their A/AAAA answers are DNSSEC-secure
  std::map<std::string, dns::TlsaAnswer> tlsa;
  std::vector<std::string> tlsa_asked;
  std::map<std::string, std::vector<std::string>> txt;
  std::vector<std::function<void()>> pending;
};

// What a test sees of one connection; it outlives the transport (the driver destroys that).
struct Wire {
  io::Transport::Events events;
  Endpoint to;
  std::string written;
  size_t writes = 0;
  bool slow = false;  // a slow peer: each piece waits in the queue until on_drain
  bool closed = false;
  std::function<void(int)> connected;
};

// MTA-STS policies by domain, answered on the resolver's next flush (never inside the call).
class FakeSts final : public sts::Source {
 public:
  explicit FakeSts(FakeResolver& r) : r_(r) {}
  void policy_for(const std::string& domain, std::function<void(sts::Applied)> cb) override {
    ++asked;
    r_.pending.push_back([this, domain, cb] {
      auto it = policies.find(domain);
      cb(it == policies.end() ? sts::Applied{} : it->second);
    });
  }
  std::map<std::string, sts::Applied> policies;
  int asked = 0;

 private:
  FakeResolver& r_;
};

class FakeTransport final : public io::Transport {
 public:
  explicit FakeTransport(std::shared_ptr<Wire> w) : w_(std::move(w)) {}
  ~FakeTransport() override { w_->closed = true; }
  void set_events(Events ev) override { w_->events = std::move(ev); }
  void start_read() override {}
  void stop_read() override {}
  bool write(std::string&& data) override {
    w_->written += data;
    ++w_->writes;
    return !w_->slow;
  }
  [[nodiscard]] size_t queued_bytes() const noexcept override { return 0; }
  bool insert_filter(std::unique_ptr<io::Filter>) override { return false; }
  void close_after_flush() override { w_->closed = true; }
  void close() override { w_->closed = true; }
  [[nodiscard]] const Endpoint& peer() const noexcept override { return w_->to; }

 private:
  std::shared_ptr<Wire> w_;
};

class FakeJobs final : public qmgr::Jobs {
 public:
  std::optional<qmgr::DeliveryRequest> begin(qmgr::JobId id) override {
    if (id != 1 || begun) return std::nullopt;
    begun = true;
    return req;
  }
  void report(qmgr::JobId, std::vector<Outcome> outs, int64_t) override { reports.push_back(std::move(outs)); }
  qmgr::DeliveryRequest req;
  bool begun = false;
  std::vector<std::vector<Outcome>> reports;
};

struct World {
  io::Loop loop;
  ManualClock clock{1'800'000'000 * kS};
  TestAlarm sched_alarm{clock};
  scheduler::Scheduler sched{sched_alarm, clock, scheduler::Limits{}, 1};
  FakeResolver resolver;
  FakeJobs jobs;
  std::vector<std::shared_ptr<Wire>> transports;
  std::string dir;
  std::string body;
  std::unique_ptr<delivery::Agent> agent;

  explicit World(config::TlsLevel tls = config::TlsLevel::May) {
    char tmpl[] = "/tmp/tern-conn-test-XXXXXX";
    dir = mkdtemp(tmpl);
    // A queue file with a body long enough for several pieces and dot lines across them.
    for (int i = 0; body.size() < 300 * 1024; ++i) body += i % 50 == 0 ? ".dot\r\n" : "line " + std::to_string(i) + "\r\n";
    queue::Envelope env;
    env.id = "M1";
    env.sender = "a@example.org";
    queue::Recipient r;
    r.address = "u@dest.example";
    env.recipients.push_back(r);
    std::ofstream(dir + "/M1", std::ios::binary) << queue::encode_header(env, body.size()) << body;
    jobs.req.job = 1;
    jobs.req.msg_id = "M1";
    jobs.req.sender = "a@example.org";
    jobs.req.rcpts = {"u@dest.example"};
    jobs.req.rcpt_params = {{}};
    jobs.req.size = body.size();
    jobs.req.path = dir + "/M1";

    dns::MxAnswer a;
    a.rcode = dns::Rcode::Ok;
    a.records = {{10, "mx1.dest.example"}, {20, "mx2.dest.example"}};
    resolver.mx["dest.example"] = a;
    resolver.addrs["mx1.dest.example"] = {*IpAddress::parse("192.0.2.1")};
    resolver.addrs["mx2.dest.example"] = {*IpAddress::parse("192.0.2.2")};

    delivery::AgentSettings s;
    s.hostname = "tern.example.net";
    s.delivery.timeouts.greeting = std::chrono::seconds(5);
    s.delivery.timeouts.data_block = std::chrono::seconds(10);
    s.delivery.timeouts.mail = std::chrono::seconds(5);
    s.delivery.timeouts.rcpt = std::chrono::seconds(5);
    s.self.hostname = "tern.example.net";
    s.delivery.tls = tls;
    agent = std::make_unique<delivery::Agent>(loop, clock, jobs, sched, resolver, s, 1);
    agent->set_io({[this](const Endpoint& to, const IpAddress*, std::function<void(int)> done) {
                     auto wire = std::make_shared<Wire>();
                     wire->to = to;
                     wire->connected = std::move(done);
                     transports.push_back(wire);
                     return std::unique_ptr<io::Transport>(new FakeTransport(wire));
                   },
                   [this] { return std::unique_ptr<Alarm>(new TestAlarm(clock)); }});
  }
  ~World() {
    agent.reset();
    std::system(("rm -rf " + dir).c_str());
  }
  void advance(int64_t us) {
    clock.advance_us(us);
    poll_alarms();
  }
  // Runs the loop (the queue file read) until `cond` holds, bounded.
  template <typename F>
  bool until(F cond) {
    for (int i = 0; i < 2000; ++i) {
      if (cond()) return true;
      loop.run_nowait();
      poll_alarms();
      resolver.flush();
      usleep(1000);
    }
    return cond();
  }
  // Starts the connection (to dest.example by MX).
  void start() {
    scheduler::Destination d;
    d.key = "mx:dest.example";
    d.domain = "dest.example";
    d.port = 25;
    agent->open(d, 1);
  }
  // Starts the connection and gets it to the first TCP connect.
  void open() {
    start();
    REQUIRE(until([&] { return !transports.empty(); }));
  }
  void feed(const std::shared_ptr<Wire>& t, std::string_view s) { t->events.on_data(s); }
};

}  // namespace

TEST_CASE("connection: a greeting dripped byte by byte does not extend its deadline; the next MX gets the mail") {
  World w;
  w.open();
  auto t1 = w.transports[0];
  CHECK(t1->to.address.str() == "192.0.2.1");
  t1->connected(0);
  // One byte every 2 s: each would have re-armed a timer that measured silence.
  for (char c : std::string("220 mx1")) {
    w.feed(t1, std::string(1, c));
    w.advance(2 * kS);
    if (w.transports.size() > 1) break;
  }
  REQUIRE(w.transports.size() == 2);  // gave up on mx1 after the 5 s greeting deadline
  CHECK(t1->closed);
  CHECK(w.clock.now_us() - 1'800'000'000 * kS <= 6 * kS);

  auto t2 = w.transports[1];
  CHECK(t2->to.address.str() == "192.0.2.2");
  t2->connected(0);
  w.feed(t2, "220 mx2 ESMTP\r\n");
  CHECK(t2->written == "EHLO tern.example.net\r\n");
  w.feed(t2, "250-mx2\r\n250 PIPELINING\r\n");
  REQUIRE(w.until([&] { return t2->written.find("DATA\r\n") != std::string::npos; }));
  CHECK(t2->written.find("MAIL FROM:<a@example.org>") != std::string::npos);
  const size_t before_body = t2->written.size();
  w.feed(t2, "250 ok\r\n250 ok\r\n354 go\r\n");
  REQUIRE(w.until([&] { return t2->written.ends_with("\r\n.\r\n"); }));
  CHECK(t2->writes > 4);  // the body went out in pieces, not in one write
  CHECK(t2->written.substr(before_body) == smtp::encode_data(w.body));
  w.feed(t2, "250 2.0.0 queued\r\n");
  REQUIRE(w.jobs.reports.size() == 1);
  const Outcome& o = w.jobs.reports[0][0];
  CHECK(o.fate == Fate::Delivered);
  CHECK(o.relay == "mx2.dest.example[192.0.2.2]:25");
  CHECK(o.remote);
}

TEST_CASE("connection: the body waits for drain events, and no progress for data_block defers the mail") {
  World w;
  w.open();
  auto t = w.transports[0];
  t->slow = true;
  t->connected(0);
  w.feed(t, "220 mx1\r\n");
  w.feed(t, "250-mx1\r\n250 PIPELINING\r\n");
  REQUIRE(w.until([&] { return t->written.find("DATA\r\n") != std::string::npos; }));
  w.feed(t, "250 ok\r\n250 ok\r\n354 go\r\n");
  REQUIRE(w.until([&] { return t->writes >= 3; }));  // EHLO, MAIL..DATA, then the first piece
  const size_t pieces = t->writes;
  for (int i = 0; i < 20; ++i) w.loop.run_nowait();
  CHECK(t->writes == pieces);  // nothing more until the transport drains
  // Progress: each drain lets one more piece go, and restarts the data_block deadline.
  for (int i = 0; i < 3; ++i) {
    w.advance(8 * kS);
    t->events.on_drain();
    REQUIRE(w.until([&] { return t->writes == pieces + size_t(i) + 1; }));
  }
  CHECK(w.jobs.reports.empty());  // 24 s in, but never 10 s without progress
  // Then the peer stops taking data.
  w.advance(11 * kS);
  REQUIRE(w.jobs.reports.size() == 1);
  const Outcome& o = w.jobs.reports[0][0];
  CHECK(o.fate == Fate::Deferred);
  CHECK(o.status == "4.4.2");
  CHECK(o.text.find("no progress") != std::string::npos);
}

TEST_CASE("connection: each awaited reply has its own deadline, even in the same state") {
  World w;
  w.jobs.req.rcpts = {"a@dest.example", "b@dest.example", "c@dest.example"};
  w.jobs.req.rcpt_params = {{}, {}, {}};
  w.open();
  auto t = w.transports[0];
  t->connected(0);
  w.feed(t, "220 mx1\r\n");
  w.feed(t, "250 mx1\r\n");  // no PIPELINING: one command per reply
  REQUIRE(w.until([&] { return t->written.find("MAIL FROM") != std::string::npos; }));
  // A slow server: every reply takes 4 s, against a 5 s RCPT deadline. Three RCPTs take
  // 12 s in all, which is fine: each one is answered within its own 5 s.
  w.advance(4 * kS);
  w.feed(t, "250 ok\r\n");
  for (int i = 0; i < 3; ++i) {
    w.advance(4 * kS);
    w.feed(t, "250 ok\r\n");
  }
  CHECK(w.jobs.reports.empty());
  CHECK(t->written.find("DATA\r\n") != std::string::npos);
}

// RFC 7672 §2.2 on the connection: a host whose TLSA lookup was bogus is never connected
// to (no plaintext fallback); the next host, with a secure proof of no TLSA, is used as
// under `may`.
TEST_CASE("connection: dane skips a host with a bogus TLSA answer and goes on to the next") {
  World w(config::TlsLevel::Dane);
  w.resolver.secure_hosts = {"mx1.dest.example", "mx2.dest.example"};
  dns::TlsaAnswer bogus;
  bogus.rcode = dns::Rcode::TempFail;
  bogus.detail = "DNSSEC validation failed: signature mismatch";
  w.resolver.tlsa["_25._tcp.mx1.dest.example"] = bogus;
  w.open();
  CHECK(w.resolver.tlsa_asked.size() == 2);
  REQUIRE(w.transports.size() == 1);
  CHECK(w.transports[0]->to.address.str() == "192.0.2.2");  // mx1 was passed over unconnected
}

// A secure TLSA set with only PKIX-EE records: TLS is still required (RFC 7672 §2.2), so a
// host without STARTTLS is given up for the next one; hosts whose addresses are insecure
// get no TLSA lookup at all.
TEST_CASE("connection: dane with an unusable secure TLSA set requires STARTTLS") {
  World w(config::TlsLevel::Dane);
  w.resolver.secure_hosts = {"mx1.dest.example"};
  dns::TlsaAnswer pkix;
  pkix.rcode = dns::Rcode::Ok;
  pkix.secure = true;
  pkix.records = {dns::TlsaRecord{1, 1, 1, std::vector<uint8_t>(32, 7)}};
  w.resolver.tlsa["_25._tcp.mx1.dest.example"] = pkix;
  w.open();
  CHECK(w.resolver.tlsa_asked == std::vector<std::string>{"_25._tcp.mx1.dest.example"});
  auto t1 = w.transports[0];
  CHECK(t1->to.address.str() == "192.0.2.1");
  t1->connected(0);
  w.feed(t1, "220 mx1 ESMTP\r\n");
  w.feed(t1, "250-mx1\r\n250 PIPELINING\r\n");  // no STARTTLS offered
  REQUIRE(w.until([&] { return w.transports.size() == 2; }));
  CHECK(t1->written.find("MAIL FROM") == std::string::npos);  // nothing sent in plaintext
  CHECK(w.transports[1]->to.address.str() == "192.0.2.2");
}

namespace {
sts::Applied enforce_policy(std::vector<std::string> mx) {
  sts::Policy p;
  p.mode = sts::Mode::Enforce;
  p.mx = std::move(mx);
  p.max_age = 86400;
  return sts::Applied{p, "id7"};
}
}  // namespace

TEST_CASE("connection: an MTA-STS enforce policy skips the MX hosts it does not list") {
  World w;
  FakeSts policies(w.resolver);
  policies.policies["dest.example"] = enforce_policy({"mx2.dest.example"});
  w.agent->set_sts(&policies);
  w.open();
  CHECK(policies.asked == 1);
  // mx1 is preferred, but only mx2 is listed.
  CHECK(w.transports[0]->to.address.str() == "192.0.2.2");
  // TLS is required: a server without STARTTLS gets nothing, and no host is left.
  auto t = w.transports[0];
  t->connected(0);
  w.feed(t, "220 mx2 ESMTP\r\n");
  w.feed(t, "250-mx2\r\n250 PIPELINING\r\n");
  REQUIRE(w.until([&] { return !w.jobs.reports.empty(); }));
  CHECK(t->written.find("MAIL FROM") == std::string::npos);
  const Outcome& o = w.jobs.reports[0][0];
  CHECK(o.fate == Fate::Deferred);
  CHECK(o.tls == "tls=none sts=enforce");
  CHECK(w.transports.size() == 1);
}

TEST_CASE("connection: an MTA-STS enforce policy listing no MX host defers without connecting") {
  World w;
  FakeSts policies(w.resolver);
  policies.policies["dest.example"] = enforce_policy({"*.elsewhere.example"});
  w.agent->set_sts(&policies);
  w.start();
  REQUIRE(w.until([&] { return !w.jobs.reports.empty(); }));
  CHECK(w.transports.empty());
  const Outcome& o = w.jobs.reports[0][0];
  CHECK(o.fate == Fate::Deferred);
  CHECK(o.status == "4.7.0");
  CHECK(o.text.find("mx1.dest.example, mx2.dest.example") != std::string::npos);
}

TEST_CASE("connection: without a policy (or for routes) MTA-STS changes nothing") {
  World w;
  FakeSts policies(w.resolver);
  w.agent->set_sts(&policies);
  w.open();
  CHECK(policies.asked == 1);
  CHECK(w.transports[0]->to.address.str() == "192.0.2.1");
}

// RFC 8461 §2: DANE takes precedence over MTA-STS. An enforce policy listing only mx2,
// but mx1 publishes a secure TLSA record: the policy is set aside and mx1 (preferred) is
// used, under DANE.
TEST_CASE("connection: secure TLSA records set an MTA-STS policy aside") {
  dns::TlsaAnswer secure;
  secure.rcode = dns::Rcode::Ok;
  secure.secure = true;
  secure.records = {dns::TlsaRecord{3, 1, 1, std::vector<uint8_t>(32, 7)}};
  World w(config::TlsLevel::Dane);
  FakeSts policies(w.resolver);
  policies.policies["dest.example"] = enforce_policy({"mx2.dest.example"});
  w.agent->set_sts(&policies);
  w.resolver.secure_hosts = {"mx1.dest.example"};
  w.resolver.tlsa["_25._tcp.mx1.dest.example"] = secure;
  w.open();
  CHECK(w.transports[0]->to.address.str() == "192.0.2.1");
}

// A TLSA lookup that merely failed proves nothing: the enforce policy stays, so mx1 (listed,
// no TLSA) still needs STARTTLS, which it does not offer: nothing is sent in plaintext.
TEST_CASE("connection: a failed TLSA lookup does not lift an MTA-STS policy") {
  dns::TlsaAnswer failed;
  failed.rcode = dns::Rcode::TempFail;
  failed.detail = "DNS timeout";
  World w(config::TlsLevel::Dane);
  FakeSts policies(w.resolver);
  policies.policies["dest.example"] = enforce_policy({"mx1.dest.example"});
  w.agent->set_sts(&policies);
  w.resolver.secure_hosts = {"mx1.dest.example", "mx2.dest.example"};
  w.resolver.tlsa["_25._tcp.mx2.dest.example"] = failed;
  w.open();
  auto t = w.transports[0];
  CHECK(t->to.address.str() == "192.0.2.1");
  t->connected(0);
  w.feed(t, "220 mx1 ESMTP\r\n");
  w.feed(t, "250-mx1\r\n250 PIPELINING\r\n");
  REQUIRE(w.until([&] { return !w.jobs.reports.empty(); }));
  CHECK(t->written.find("MAIL FROM") == std::string::npos);
  CHECK(w.jobs.reports[0][0].fate == Fate::Deferred);
}
