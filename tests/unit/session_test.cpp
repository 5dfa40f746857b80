// Unit tests for the inbound session state machine and the relay policy (no sockets).
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "server/relay_policy.hpp"
#include "server/session.hpp"
#include "smtp/address.hpp"

using namespace tern;
using namespace tern::server;

namespace {

config::Config test_config() {
  config::Config c;
  c.hostname = "relay.example.net";
  c.postmaster = "hostmaster@example.net";
  c.relay.networks = {*Cidr::parse("127.0.0.1/32")};
  config::RelayDomain partner{"partner.example", std::nullopt, {}};
  config::RelayDomain other{"other.example", std::set<std::string>{"alice", "bob@other.example"}, {}};
  c.relay.domains = {partner, other};
  c.limits.max_message_size = 1000;
  c.limits.max_recipients = 3;
  c.limits.max_errors = 5;
  return c;
}

struct FakeHost : SessionHost {
  bool room = true;
  std::vector<queue::Envelope> begun;
  std::string data;
  int commits = 0, aborts = 0;
  std::vector<std::string> logged;
  void log_event(std::string_view what) override { logged.emplace_back(what); }
  bool queue_has_room(uint64_t) override { return room; }
  std::string begin_message(const queue::Envelope& env) override {
    begun.push_back(env);
    data.clear();
    return "0000000000" + std::to_string(begun.size());
  }
  void message_data(std::string_view c) override { data.append(c); }
  void commit_message() override { ++commits; }
  void abort_message() override { ++aborts; }
  int64_t now_us() override { return 1764066538000000; }
};

struct Harness {
  FakeHost host;
  std::unique_ptr<Session> s;
  explicit Harness(const char* ip = "127.0.0.1", config::Config cfg = test_config(), bool tls = false,
                   bool implicit_tls = false) {
    auto settings = std::make_shared<const SessionSettings>(
        SessionSettings{cfg.hostname, cfg.limits, RelayPolicy(cfg), tls});
    auto addr = *IpAddress::parse(ip);
    s = std::make_unique<Session>(
        settings, ClientInfo{addr, 4000, settings->policy.client_may_relay(addr), implicit_tls}, host);
    s->start();
    (void)s->take_output();
  }
  std::string send(std::string_view in) {
    s->feed(in);
    return s->take_output();
  }
};

}  // namespace

TEST_CASE("session: greeting, EHLO capabilities, HELO") {
  Harness h;
  auto ehlo = h.send("EHLO client.example\r\n");
  CHECK(ehlo.starts_with("250-relay.example.net\r\n"));
  for (const char* cap : {"PIPELINING", "SIZE 1000", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"})
    CHECK(ehlo.find(cap) != std::string::npos);
  CHECK(h.send("HELO x\r\n") == "250 relay.example.net\r\n");
  CHECK(h.send("EHLO\r\n").starts_with("501 5.5.4"));
}

TEST_CASE("session: a full transaction reaches the host and waits for the commit") {
  Harness h;
  h.send("EHLO c\r\n");
  CHECK(h.send("MAIL FROM:<a@example.net> BODY=8BITMIME\r\n") == "250 2.1.0 Ok\r\n");
  CHECK(h.send("RCPT TO:<b@victim.example>\r\n") == "250 2.1.5 Ok\r\n");
  CHECK(h.send("DATA\r\n").starts_with("354 "));
  REQUIRE(h.host.begun.size() == 1);
  CHECK(h.host.begun[0].sender == "a@example.net");
  CHECK(h.host.begun[0].mail_params == std::vector<std::string>{"BODY=8BITMIME"});
  // The reply waits for the queue; commands pipelined behind the data wait too.
  CHECK(h.send("Subject: t\r\n\r\nbody\r\n.\r\nQUIT\r\n").empty());
  CHECK(h.s->state() == Session::State::WaitCommit);
  CHECK_FALSE(h.s->wants_input());
  CHECK(h.host.commits == 1);
  CHECK(h.host.data.starts_with("Received: from c ([127.0.0.1])\r\n\tby relay.example.net (tern) with ESMTP id 00000000001\r\n\tfor <b@victim.example>; "));
  CHECK(h.host.data.find("Message-ID: <00000000001@relay.example.net>\r\n") != std::string::npos);
  CHECK(h.host.data.find("Date: ") != std::string::npos);
  CHECK(h.host.data.ends_with("Subject: t\r\n\r\nbody\r\n"));
  h.s->on_commit(CommitOutcome::Committed);
  CHECK(h.s->take_output() == "250 2.0.0 Ok: queued as 00000000001\r\n221 2.0.0 Bye\r\n");
  CHECK(h.s->closed());
}

TEST_CASE("session: commit failures map to 452 4.3.1 and 451 4.3.0") {
  Harness h;
  h.send("EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n");
  h.send(".\r\n");
  h.s->on_commit(CommitOutcome::NoSpace);
  CHECK(h.s->take_output() == "452 4.3.1 Insufficient system storage\r\n");
  h.send("MAIL FROM:<>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n.\r\n");
  h.s->on_commit(CommitOutcome::IoError);
  CHECK(h.s->take_output().ends_with("451 4.3.0 Error: queue file write error\r\n"));
}

TEST_CASE("session: pipelined commands are answered in order") {
  Harness h;
  auto out = h.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\nRCPT TO:<bad>\r\nDATA\r\n");
  CHECK(out.find("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n501 5.1.3") != std::string::npos);
  CHECK(out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"));
}

TEST_CASE("session: sequencing and syntax errors") {
  Harness h;
  CHECK(h.send("MAIL FROM:<a@b.example>\r\n").starts_with("503 5.5.1"));
  h.send("EHLO c\r\n");
  CHECK(h.send("RCPT TO:<a@b.example>\r\n").starts_with("503 5.5.1"));
  CHECK(h.send("DATA\r\n").starts_with("503 5.5.1"));
  h.s = nullptr;
  Harness g;
  g.send("EHLO c\r\n");
  CHECK(g.send("MAIL FROM:a@b.example\r\n").starts_with("501"));
  CHECK(g.send("MAIL TO:<a@b.example>\r\n").starts_with("501 5.5.4"));
  CHECK(g.send("MAIL FROM:<a@b.example> FOO=1\r\n").starts_with("555 5.5.4"));
  CHECK(g.send("FROB\r\n").starts_with("500 5.5.2"));
  CHECK_FALSE(g.s->closed());
  CHECK(g.send("RCPT TO:<a@b.example>\r\n").find("421 4.7.0") != std::string::npos);
  CHECK(g.s->closed());  // fifth error: 421 and close
}

TEST_CASE("session: error limit closes with 421") {
  Harness h;
  std::string out;
  for (int i = 0; i < 5; ++i) out += h.send("XYZZY\r\n");
  CHECK(out.ends_with("421 4.7.0 relay.example.net Error: too many errors, closing connection\r\n"));
  CHECK(h.s->closed());
  CHECK(h.send("NOOP\r\n").empty());
}

TEST_CASE("session: over-long command lines get 500 5.5.2 and do not resync mid-line") {
  Harness h;
  h.send("EHLO c\r\n");
  std::string longline(5000, 'A');
  auto out = h.send(longline);
  CHECK(out.starts_with("500 5.5.2"));
  CHECK(h.send("BBBB\r\nNOOP\r\n") == "250 2.0.0 Ok\r\n");  // the tail of the long line is dropped
}

TEST_CASE("session: SIZE at MAIL and at end of data") {
  Harness h;
  h.send("EHLO c\r\n");
  CHECK(h.send("MAIL FROM:<a@b.example> SIZE=1001\r\n").starts_with("552 5.3.4"));
  CHECK(h.send("MAIL FROM:<a@b.example> SIZE=x\r\n").starts_with("501"));
  h.send("MAIL FROM:<a@b.example> SIZE=10\r\nRCPT TO:<x@y.example>\r\nDATA\r\n");
  // Oversized data: no reply until the real end of data.
  CHECK(h.send(std::string(1500, 'x') + "\r\n").empty());
  CHECK(h.send("more\r\n").empty());
  CHECK(h.send(".\r\n").starts_with("552 5.3.4"));
  CHECK(h.host.commits == 0);
  CHECK(h.host.aborts >= 1);
  CHECK(h.send("NOOP\r\n") == "250 2.0.0 Ok\r\n");
}

TEST_CASE("session: no room at MAIL gives 452 4.3.1") {
  Harness h;
  h.host.room = false;
  h.send("EHLO c\r\n");
  CHECK(h.send("MAIL FROM:<a@b.example>\r\n").starts_with("452 4.3.1"));
}

TEST_CASE("session: bare LF smuggling is answered only at the real end, with 550 5.6.0") {
  Harness h;
  h.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\nDATA\r\n");
  CHECK(h.send("hi\n.\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<v@y.example>\r\nDATA\r\nsmuggled\r\n").empty());
  CHECK(h.send(".\r\n").starts_with("550 5.6.0"));
  CHECK(h.host.begun.size() == 1);
  CHECK(h.host.commits == 0);
}

TEST_CASE("session: loop detection counts Received headers") {
  // test_config's max_message_size (1000) is too small for 51 headers.
  config::Config c = test_config();
  c.limits.max_message_size = 100000;
  for (int n : {50, 51}) {
    Harness h("127.0.0.1", c);
    h.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\nDATA\r\n");
    std::string msg;
    for (int i = 0; i < n; ++i) msg += "Received: from hop" + std::to_string(i) + "\r\n";
    auto out = h.send(msg + "\r\nbody\r\n.\r\n");
    if (n == 50) {
      CHECK(out.empty());
      CHECK(h.host.commits == 1);
    } else {
      CHECK(out.starts_with("554 5.4.6"));
      CHECK(h.host.commits == 0);
    }
  }
}

TEST_CASE("session: recipients limit gives 452 4.5.3") {
  Harness h;
  h.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
  for (int i = 0; i < 3; ++i) CHECK(h.send("RCPT TO:<u" + std::to_string(i) + "@y.example>\r\n").starts_with("250"));
  CHECK(h.send("RCPT TO:<u9@y.example>\r\n").starts_with("452 4.5.3"));
}

TEST_CASE("session: no Message-ID/Date added for outsiders") {
  Harness h("127.0.0.5");
  h.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@partner.example>\r\nDATA\r\n");
  h.send("Subject: t\r\n\r\nbody\r\n.\r\n");
  CHECK(h.host.data.find("Message-ID:") == std::string::npos);
  CHECK(h.host.data.find("\r\nDate:") == std::string::npos);
}

TEST_CASE("session: shutdown closes idle sessions, lets a transaction finish") {
  Harness idle;
  idle.send("EHLO c\r\n");
  idle.s->on_shutdown();
  CHECK(idle.s->take_output().starts_with("421 4.3.2"));
  CHECK(idle.s->closed());

  Harness busy;
  busy.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\n");
  busy.s->on_shutdown();
  CHECK_FALSE(busy.s->closed());
  busy.send("DATA\r\nbody\r\n.\r\n");
  busy.s->on_commit(CommitOutcome::Committed);
  auto out = busy.s->take_output();
  CHECK(out.find("250 2.0.0 Ok: queued as") != std::string::npos);
  CHECK(out.ends_with("421 4.3.2 relay.example.net Service shutting down\r\n"));
  CHECK(busy.s->closed());
}

TEST_CASE("session: STARTTLS is offered only with a certificate, and not twice") {
  Harness plain;
  CHECK(plain.send("EHLO c\r\n").find("STARTTLS") == std::string::npos);
  CHECK(plain.send("STARTTLS\r\n").starts_with("502 5.5.1"));

  Harness h("127.0.0.1", test_config(), true);
  const auto ehlo = h.send("EHLO c\r\n");
  CHECK(ehlo.ends_with("250-CHUNKING\r\n250 STARTTLS\r\n"));
  CHECK(h.send("STARTTLS now\r\n").starts_with("501 5.5.4"));
  CHECK(h.send("STARTTLS\r\n") == "220 2.0.0 Ready to start TLS\r\n");
  CHECK(h.s->wants_tls());
  h.s->on_tls_started({"TLSv1.3", "TLS_AES_256_GCM_SHA384", 256});
  CHECK_FALSE(h.s->wants_tls());
  const auto again = h.send("EHLO c\r\n");
  CHECK(again.starts_with("250-relay.example.net"));
  CHECK(again.find("STARTTLS") == std::string::npos);
  CHECK(h.send("STARTTLS\r\n").starts_with("503 5.5.1"));

  Harness implicit("127.0.0.1", test_config(), true, true);
  CHECK(implicit.send("EHLO c\r\n").find("STARTTLS") == std::string::npos);
}

TEST_CASE("session: commands pipelined after STARTTLS are discarded, and the session starts over") {
  Harness h("127.0.0.1", test_config(), true);
  h.send("EHLO c\r\n");
  // The injection: one write carrying STARTTLS and a command meant for the TLS session.
  const auto out = h.send("STARTTLS\r\nMAIL FROM:<a@b.example>\r\n");
  CHECK(out == "220 2.0.0 Ready to start TLS\r\n");  // nothing answered for the MAIL
  CHECK(h.host.logged.back().find("discarded") != std::string::npos);
  // More plaintext before the handshake completes is not read either.
  CHECK(h.send("RCPT TO:<x@y.example>\r\n").empty());
  h.s->on_tls_started({"TLSv1.3", "TLS_AES_128_GCM_SHA256", 128});
  // The MAIL was never executed, and the EHLO before TLS is forgotten (RFC 3207 4.2).
  CHECK(h.send("RCPT TO:<x@y.example>\r\n").starts_with("503"));
  CHECK(h.send("MAIL FROM:<a@b.example>\r\n").starts_with("503 5.5.1 Error: send HELO/EHLO first"));
  CHECK(h.send("EHLO c\r\n").starts_with("250-"));
  CHECK(h.send("MAIL FROM:<a@b.example>\r\n") == "250 2.1.0 Ok\r\n");
  // STARTTLS inside a transaction is refused.
  Harness t("127.0.0.1", test_config(), true);
  t.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
  CHECK(t.send("STARTTLS\r\n").starts_with("503 5.5.1"));
}

TEST_CASE("session: Received: names TLS and the protocol with an S (RFC 3848)") {
  Harness h("127.0.0.1", test_config(), true);
  h.send("EHLO c\r\nSTARTTLS\r\n");
  h.s->on_tls_started({"TLSv1.3", "TLS_AES_256_GCM_SHA384", 256});
  h.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@partner.example>\r\nDATA\r\nSubject: s\r\n\r\nb\r\n.\r\n");
  REQUIRE(h.host.commits == 1);
  CHECK(h.host.begun.back().protocol == "ESMTPS");
  CHECK(h.host.data.find("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256 bits))") != std::string::npos);
  CHECK(h.host.data.find("with ESMTPS id") != std::string::npos);
}

TEST_CASE("relay: the open-relay guard") {
  const config::Config cfg = test_config();
  RelayPolicy p(cfg);
  auto check = [&](const char* path, bool relay) {
    auto a = smtp::parse_path(path, false, true, false);
    REQUIRE(a.ok());
    return p.check(a->address, relay);
  };
  CHECK(p.client_may_relay(*IpAddress::parse("127.0.0.1")));
  CHECK(p.client_may_relay(*IpAddress::parse("::ffff:127.0.0.1")));
  CHECK_FALSE(p.client_may_relay(*IpAddress::parse("127.0.0.5")));

  CHECK(check("<u@victim.example>", false).enhanced == "5.7.1");
  CHECK(check("<@partner.example:u@victim.example>", false).enhanced == "5.7.1");
  CHECK(check("<u@[127.0.0.1]>", false).enhanced == "5.7.1");
  CHECK(check("<u@sub.partner.example>", false).enhanced == "5.7.1");
  CHECK(check("<u@PARTNER.Example.>", false).accept);
  CHECK(check("<@victim.example:u@partner.example>", false).accept);
  CHECK(check("<Alice@other.example>", false).accept);
  CHECK(check("<bob@other.example>", false).accept);
  CHECK(check("<carol@other.example>", false).enhanced == "5.1.1");
  CHECK(check("<carol@other.example>", true).enhanced == "5.1.1");
  auto pm = check("<postmaster>", false);
  CHECK(pm.accept);
  CHECK(pm.deliver_to == "hostmaster@example.net");
  CHECK(check("<PostMaster@Relay.Example.NET>", false).deliver_to == "hostmaster@example.net");
  CHECK(check("<someone@relay.example.net>", true).enhanced == "5.1.1");
  CHECK(check("<u@victim.example>", true).accept);
  CHECK(check("<u@[127.0.0.1]>", true).accept);
}

TEST_CASE("session: DSN parameters (RFC 3461) are checked and kept raw") {
  Harness h;
  CHECK(h.send("EHLO c\r\n").find("250-DSN\r\n") != std::string::npos);
  CHECK(h.send("MAIL FROM:<a@b.example> RET=FULL ENVID=QQ+2B1\r\n") == "250 2.1.0 Ok\r\n");
  CHECK(h.send("RCPT TO:<x@y.example> NOTIFY=NEVER,SUCCESS\r\n").starts_with("501"));
  CHECK(h.send("RCPT TO:<x@y.example> ORCPT=rfc822;x+zz@y.example\r\n").starts_with("501"));
  CHECK(h.send("RCPT TO:<x@y.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;X@y.example\r\n") == "250 2.1.5 Ok\r\n");
  h.send("DATA\r\n");
  REQUIRE(h.host.begun.size() == 1);
  CHECK(h.host.begun[0].mail_params == std::vector<std::string>{"RET=FULL", "ENVID=QQ+2B1"});
  CHECK(h.host.begun[0].recipients[0].params ==
        std::vector<std::string>{"NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;X@y.example"});
  Harness g;
  g.send("EHLO c\r\n");
  CHECK(g.send("MAIL FROM:<a@b.example> RET=ALL\r\n").starts_with("501"));
  CHECK(g.send("MAIL FROM:<a@b.example> RET=FULL RET=HDRS\r\n").starts_with("501"));
}

TEST_CASE("session: a refused command is logged with the client's control bytes escaped") {
  Harness h;
  h.send("EHLO c\r\n");
  CHECK(h.send("FOO\x1b[2J\x07\rX\xff\r\n").starts_with("500 5.5.2"));
  REQUIRE(h.host.logged.size() == 1);
  const std::string& line = h.host.logged[0];
  CHECK(line.find("command=FOO\\x1b[2J\\x07\\rX\\xff") != std::string::npos);
  for (char c : line) CHECK_FALSE((static_cast<unsigned char>(c) < 0x20 || c == 0x7f));
  CHECK(line.find('\xff') == std::string::npos);
}

TEST_CASE("session: HTTP and proxy requests get one error and the connection closes") {
  for (const char* line : {"GET / HTTP/1.1", "POST /x HTTP/1.0", "CONNECT mx.example:25 HTTP/1.1",
                           "HEAD / HTTP/1.1", "PUT /a HTTP/1.1", "USER root", "PASS secret",
                           "get /", "PROPFIND /dav HTTP/1.1"}) {
    CAPTURE(line);
    Harness h;
    // The rest of an HTTP request (headers, a body made of SMTP commands) is never read.
    const auto out = h.send(std::string(line) + "\r\nHost: x\r\n\r\nMAIL FROM:<a@b.example>\r\n");
    CHECK(out.starts_with("554 5.7.0 "));
    CHECK(out.find("\r\n") == out.size() - 2);  // exactly one reply
    CHECK(h.s->closed());
    CHECK(h.host.begun.empty());
  }
  Harness h;
  h.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
  CHECK(h.send("GET / HTTP/1.1\r\n").starts_with("554 5.7.0"));
  CHECK(h.s->closed());
  // Ordinary unknown commands still get 500 and the session goes on.
  Harness k;
  CHECK(k.send("GETX /\r\n").starts_with("500 5.5.2"));
  CHECK(k.send("XHTTP/1.1\r\n").starts_with("500 5.5.2"));
  CHECK_FALSE(k.s->closed());
}

TEST_CASE("session: Received: names an IPv6 client as [IPv6:addr] (RFC 5321 4.1.3)") {
  Harness h("2001:db8::25");
  h.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@partner.example>\r\nDATA\r\n");
  h.send("Subject: t\r\n\r\nbody\r\n.\r\n");
  REQUIRE(h.host.commits == 1);
  CHECK(h.host.data.starts_with("Received: from c ([IPv6:2001:db8::25])\r\n"));
  Harness v4("192.0.2.7");
  v4.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@partner.example>\r\nDATA\r\n");
  v4.send("Subject: t\r\n\r\nbody\r\n.\r\n");
  REQUIRE(v4.host.commits == 1);
  CHECK(v4.host.data.starts_with("Received: from c ([192.0.2.7])\r\n"));
}

TEST_CASE("session: MAIL and RCPT with malformed UTF-8 under SMTPUTF8 are refused") {
  Harness h;
  h.send("EHLO c\r\n");
  CHECK(h.send("MAIL FROM:<\xe0\x80\xaf@example.org> SMTPUTF8\r\n").starts_with("501"));
  CHECK(h.send("MAIL FROM:<a@example.org> SMTPUTF8\r\n") == "250 2.1.0 Ok\r\n");
  CHECK(h.send("RCPT TO:<x\xed\xa0\x80@partner.example>\r\n").starts_with("501"));
  CHECK(h.send("RCPT TO:<x@b\xf4\x90\x80\x80.partner.example>\r\n").starts_with("501"));
  CHECK(h.send("RCPT TO:<r\xc3\xbc" "ck@partner.example>\r\n") == "250 2.1.5 Ok\r\n");
}

TEST_CASE("session: a HELO/EHLO name in malformed UTF-8 is refused (it goes into Received:)") {
  Harness h;
  CHECK(h.send("EHLO b\xe0\x80\xaf.example\r\n").starts_with("501 5.5.4"));
  CHECK(h.send("HELO \xff\xfe\r\n").starts_with("501 5.5.4"));
  CHECK(h.send("EHLO b\xc3\xbc" "cher.example\r\n").starts_with("250"));
}

TEST_CASE("session: ORCPT in Postfix's and RFC 6533's UTF-8 forms is accepted and stored alike") {
  for (const char* orcpt : {"rfc822;r+C3+BCck@partner.example", "utf-8;r\xc3\xbc" "ck@partner.example",
                            "utf-8;r\\x{FC}ck@partner.example"}) {
    CAPTURE(orcpt);
    Harness h;
    h.send("EHLO c\r\nMAIL FROM:<a@b.example> SMTPUTF8\r\n");
    CHECK(h.send("RCPT TO:<r\xc3\xbc" "ck@partner.example> NOTIFY=FAILURE ORCPT=" + std::string(orcpt) + "\r\n") ==
          "250 2.1.5 Ok\r\n");
    h.send("DATA\r\n.\r\n");
    REQUIRE(h.host.begun.size() == 1);
    REQUIRE(h.host.begun[0].recipients.size() == 1);
    CHECK(h.host.begun[0].recipients[0].params ==
          std::vector<std::string>{"NOTIFY=FAILURE", "ORCPT=utf-8;r\\x{FC}ck@partner.example"});
  }
  Harness h;
  h.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
  // Unusual but well-formed: accepted (and kept as xtext).
  CHECK(h.send("RCPT TO:<x@partner.example> ORCPT=rfc822;x+01y@partner.example\r\n") == "250 2.1.5 Ok\r\n");
  CHECK(h.send("RCPT TO:<y@partner.example> ORCPT=x-unknown;whatever\r\n") == "250 2.1.5 Ok\r\n");
  // Broken xtext: 501.
  CHECK(h.send("RCPT TO:<z@partner.example> ORCPT=rfc822;z+Q@partner.example\r\n").starts_with("501"));
}

// ---- CHUNKING (RFC 3030) ----

namespace {
std::string bdat(std::string_view chunk, bool last = false) {
  return "BDAT " + std::to_string(chunk.size()) + (last ? " LAST" : "") + "\r\n" + std::string(chunk);
}
const char* kEnvelope = "MAIL FROM:<a@b.example>\r\nRCPT TO:<x@partner.example>\r\n";
}  // namespace

TEST_CASE("bdat: CHUNKING is offered, BINARYMIME is not") {
  Harness h;
  const auto ehlo = h.send("EHLO c\r\n");
  CHECK(ehlo.find("CHUNKING\r\n") != std::string::npos);
  CHECK(ehlo.find("BINARYMIME") == std::string::npos);
  CHECK(h.send("MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n").starts_with("501"));
}

TEST_CASE("bdat: chunks make one message on the same path as DATA") {
  Harness h;
  h.send("EHLO c\r\n");
  CHECK(h.send(kEnvelope) == "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  CHECK(h.send(bdat("Subject: t\r\n")) == "250 2.0.0 Ok: 12 octets received\r\n");
  REQUIRE(h.host.begun.size() == 1);
  CHECK(h.s->state() == Session::State::Bdat);
  // Dots and terminator-like sequences are plain content in a chunk.
  CHECK(h.send(bdat("\r\n.\r\nbody\r\n..x\r\n", true)).empty());
  CHECK(h.s->state() == Session::State::WaitCommit);
  CHECK(h.host.commits == 1);
  CHECK(h.host.data.starts_with("Received: from c ([127.0.0.1])\r\n\tby relay.example.net (tern) with ESMTP id 00000000001\r\n"));
  CHECK(h.host.data.ends_with("Subject: t\r\n\r\n.\r\nbody\r\n..x\r\n"));
  h.s->on_commit(CommitOutcome::Committed);
  CHECK(h.s->take_output() == "250 2.0.0 Ok: queued as 00000000001\r\n");
  CHECK(h.s->state() == Session::State::Greeted);
}

TEST_CASE("bdat: pipelined with other commands and split at every byte") {
  const std::string chunk1 = "Subject: pipelined\r\n\r\nline one\r\n";
  const std::string chunk2 = "MAIL FROM:<evil@x.example>\r\nRCPT TO:<v@y.example>\r\n";
  const std::string all = std::string(kEnvelope) + bdat(chunk1) + bdat(chunk2) + bdat("", true) + "NOOP\r\nQUIT\r\n";
  for (size_t piece : {all.size(), size_t(1), size_t(7)}) {
    CAPTURE(piece);
    Harness h;
    h.send("EHLO c\r\n");
    std::string out;
    for (size_t i = 0; i < all.size(); i += piece) out += h.send(std::string_view(all).substr(i, piece));
    CHECK(out == "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: " + std::to_string(chunk1.size()) +
                     " octets received\r\n250 2.0.0 Ok: " + std::to_string(chunk2.size()) +
                     " octets received\r\n");
    REQUIRE(h.host.commits == 1);
    CHECK(h.host.begun.size() == 1);  // the chunk's MAIL line was content, not a command
    CHECK(h.host.data.ends_with(chunk1 + chunk2));
    h.s->on_commit(CommitOutcome::Committed);
    CHECK(h.s->take_output() == "250 2.0.0 Ok: queued as 00000000001\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n");
  }
}

TEST_CASE("bdat: BDAT 0 LAST ends a message, alone or after chunks") {
  Harness h;
  h.send("EHLO c\r\n");
  h.send(kEnvelope);
  CHECK(h.send("BDAT 0 LAST\r\n").empty());
  CHECK(h.host.commits == 1);
  h.s->on_commit(CommitOutcome::Committed);
  CHECK(h.s->take_output().starts_with("250 2.0.0 Ok: queued as"));
  // An empty message still gets tern's Received: header.
  CHECK(h.host.data.starts_with("Received: "));
  h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<x@partner.example>\r\n");
  CHECK(h.send(bdat("Subject: two\r\n\r\nx\r\n") + "bdat 0 last\r\n") == "250 2.0.0 Ok: 19 octets received\r\n");
  CHECK(h.host.commits == 2);
  CHECK(h.host.data.ends_with("Subject: two\r\n\r\nx\r\n"));
}

TEST_CASE("bdat: a bare LF is refused as in DATA; the chunk is read, later BDATs get 503") {
  config::Config c = test_config();
  c.limits.max_errors = 50;
  Harness h("127.0.0.1", c);
  h.send("EHLO c\r\n");
  h.send(kEnvelope);
  CHECK(h.send(bdat("Subject: t\r\n\r\nhi\n")).starts_with("550 5.6.0"));
  CHECK(h.host.aborts >= 1);
  CHECK(h.s->state() == Session::State::Greeted);
  // Later chunks of the failed transaction: 503, their octets skipped, never commands.
  CHECK(h.send(bdat("QUIT\r\n")).starts_with("503 5.5.1"));
  CHECK(h.send(bdat("RSET\r\n", true)).starts_with("503 5.5.1"));
  CHECK_FALSE(h.s->closed());
  CHECK(h.host.commits == 0);
  // The session goes on with a new transaction.
  CHECK(h.send("MAIL FROM:<a@b.example>\r\n") == "250 2.1.0 Ok\r\n");
  // A bare CR at the very end of the last chunk is bare too, and so is one before a chunk
  // boundary that the next chunk does not follow with LF.
  h.send("RCPT TO:<x@partner.example>\r\n");
  CHECK(h.send(bdat("Subject: t\r\n\r\nx\r", true)).starts_with("550 5.6.0"));
  h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<x@partner.example>\r\n");
  CHECK(h.send(bdat("Subject: t\r\n\r\nx\r")).starts_with("250"));
  CHECK(h.send(bdat("y\r\n", true)).starts_with("550 5.6.0"));
  // CRLF split across two chunks is an ordinary line end.
  h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<x@partner.example>\r\n");
  CHECK(h.send(bdat("Subject: t\r\n\r\nx\r")).starts_with("250"));
  CHECK(h.send(bdat("\ny\r\n", true)).empty());
  CHECK(h.host.commits == 1);
  CHECK(h.host.data.ends_with("\r\n\r\nx\r\ny\r\n"));
}

TEST_CASE("bdat: bare newlines normalised when so configured") {
  config::Config c = test_config();
  c.limits.bare_newlines = config::BareNewlinePolicy::Normalize;
  Harness h("127.0.0.1", c);
  h.send("EHLO c\r\n");
  h.send(kEnvelope);
  CHECK(h.send(bdat("Subject: t\n\nhi\nthere\r", true)).empty());
  REQUIRE(h.host.commits == 1);
  CHECK(h.host.data.ends_with("Subject: t\r\n\r\nhi\r\nthere\r\n"));
}

TEST_CASE("bdat: size limit; refused chunks are read and discarded") {
  Harness h;  // max_message_size 1000
  h.send("EHLO c\r\n");
  h.send(kEnvelope);
  CHECK(h.send(bdat(std::string(600, 'a'))).starts_with("250"));
  // 600 + 500 > 1000: refused at the command, the 500 octets skipped.
  CHECK(h.send("BDAT 500\r\n").starts_with("552 5.3.4"));
  CHECK(h.send(std::string(200, 'b') + "QUIT\r\n" + std::string(294, 'b')).empty());
  CHECK_FALSE(h.s->closed());
  CHECK(h.send(bdat("x", true)).starts_with("503 5.5.1"));
  CHECK(h.host.commits == 0);
  CHECK(h.send("NOOP\r\n") == "250 2.0.0 Ok\r\n");
  // A chunk larger than the limit on its own, split across reads.
  h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<x@partner.example>\r\n");
  CHECK(h.send("BDAT 5000 LAST\r\n" + std::string(2000, 'c')).starts_with("552 5.3.4"));
  CHECK(h.send(std::string(3000, 'c') + "NOOP\r\n") == "250 2.0.0 Ok\r\n");
}

TEST_CASE("bdat: sequencing: no DATA, MAIL or RCPT inside; RSET abandons; BDAT needs RCPT") {
  config::Config c = test_config();
  c.limits.max_errors = 50;
  Harness h("127.0.0.1", c);
  h.send("EHLO c\r\n");
  // Before MAIL and before RCPT: 503, and the chunk is skipped (its QUIT is not obeyed).
  CHECK(h.send(bdat("QUIT\r\n")).starts_with("503 5.5.1"));
  h.send("MAIL FROM:<a@b.example>\r\n");
  CHECK(h.send(bdat("QUIT\r\n", true)).starts_with("503 5.5.1 Error: need RCPT"));
  CHECK_FALSE(h.s->closed());
  h.send("RCPT TO:<x@partner.example>\r\n");
  CHECK(h.send(bdat("Subject: t\r\n")).starts_with("250"));
  CHECK(h.send("DATA\r\n").starts_with("503 5.5.1"));
  CHECK(h.send("MAIL FROM:<a@b.example>\r\n").starts_with("503 5.5.1"));
  CHECK(h.send("RCPT TO:<y@partner.example>\r\n").starts_with("503 5.5.1"));
  CHECK(h.send("NOOP\r\n") == "250 2.0.0 Ok\r\n");
  const int aborts = h.host.aborts;
  CHECK(h.send("RSET\r\n") == "250 2.0.0 Ok\r\n");
  CHECK(h.host.aborts == aborts + 1);  // the begun message is dropped
  CHECK(h.send(bdat("x", true)).starts_with("503 5.5.1"));
  CHECK(h.host.commits == 0);
  // DATA transaction: BDAT is not allowed after DATA either (its octets are message data).
  h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<x@partner.example>\r\nDATA\r\n");
  CHECK(h.send("BDAT 3\r\n.\r\n").empty());
  CHECK(h.host.commits == 1);
}

TEST_CASE("bdat: a malformed BDAT closes the connection (its data cannot be skipped)") {
  for (const char* line : {"BDAT\r\n", "BDAT x\r\n", "BDAT 10 FIRST\r\n", "BDAT -1\r\n", "BDAT 99999999999999999999\r\n"}) {
    CAPTURE(line);
    Harness h;
    h.send("EHLO c\r\n");
  h.send(kEnvelope);
    CHECK(h.send(line).starts_with("501 5.5.4"));
    CHECK(h.s->closed());
    CHECK(h.host.commits == 0);
  }
}

TEST_CASE("bdat: loop detection and long lines apply to BDAT content") {
  config::Config c = test_config();
  c.limits.max_message_size = 100000;
  c.limits.long_lines = config::LongLinePolicy::Reject;
  Harness h("127.0.0.1", c);
  h.send("EHLO c\r\n");
  h.send(kEnvelope);
  std::string msg;
  for (int i = 0; i < 51; ++i) msg += "Received: from hop" + std::to_string(i) + "\r\n";
  CHECK(h.send(bdat(msg) + bdat("\r\nbody\r\n", true)).find("554 5.4.6") != std::string::npos);
  CHECK(h.host.commits == 0);
  h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<x@partner.example>\r\n");
  CHECK(h.send(bdat("Subject: t\r\n\r\n" + std::string(1200, 'l') + "\r\n")).starts_with("550 5.6.0"));
  CHECK(h.host.commits == 0);
}

TEST_CASE("bdat: shutdown and timeout drop a BDAT transaction's message") {
  Harness h;
  h.send("EHLO c\r\n");
  h.send(kEnvelope);
  h.send(bdat("Subject: t\r\n"));
  const int aborts = h.host.aborts;
  h.s->on_timeout();
  CHECK(h.s->take_output().starts_with("421 4.4.2"));
  CHECK(h.host.aborts == aborts + 1);
  Harness k;
  k.send("EHLO c\r\n");
  k.send(kEnvelope);
  k.send("BDAT 100\r\nSubject");
  CHECK(k.s->in_data());
}
