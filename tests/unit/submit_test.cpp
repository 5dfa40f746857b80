// tern-sendmail: the command line (the real callers' lines as a table) and the message
// handling of local submission.
#include <doctest/doctest.h>

#include "config/config.hpp"
#include "submit/message.hpp"
#include "submit/options.hpp"
#include "submit/protocol.hpp"
#include "submit/smtp_session.hpp"

using namespace tern;
using namespace tern::submit;

namespace {
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t sp = s.find(' ', pos);
    if (sp == std::string::npos) sp = s.size();
    if (sp > pos) out.push_back(s.substr(pos, sp - pos));
    pos = sp + 1;
  }
  return out;
}
}  // namespace

TEST_CASE("sendmail command lines of the real callers") {
  struct Row {
    const char* caller;
    const char* argv0;
    const char* args;
    Mode mode;
    bool t, i;
    const char* sender;  // nullptr: no -f
    const char* full_name;
    Body body;
    std::vector<std::string> rcpts;
  };
  const std::vector<Row> table = {
      {"cron", "/usr/sbin/sendmail", "-FCronDaemon -i -B8BITMIME -oem alice", Mode::Deliver, false, true, nullptr,
       "CronDaemon", Body::EightBitMime, {"alice"}},
      {"cronie", "/usr/sbin/sendmail", "-FCronDaemon -i -odi -oem -oi -t -f root@h.example", Mode::Deliver, true,
       true, "root@h.example", "CronDaemon", Body::Unspecified, {}},
      {"PHP mail()", "/usr/sbin/sendmail", "-t -i", Mode::Deliver, true, true, nullptr, "", Body::Unspecified, {}},
      {"PHPMailer", "/usr/sbin/sendmail", "-oi -fweb@site.example -t", Mode::Deliver, true, true, "web@site.example",
       "", Body::Unspecified, {}},
      {"git send-email", "/usr/sbin/sendmail", "-i -f dev@x.example a@y.example b@z.example", Mode::Deliver, false,
       true, "dev@x.example", "", Body::Unspecified, {"a@y.example", "b@z.example"}},
      {"mutt", "/usr/sbin/sendmail", "-oem -oi -- a@y.example -weird@z.example", Mode::Deliver, false, true, nullptr,
       "", Body::Unspecified, {"a@y.example", "-weird@z.example"}},
      {"mdadm", "/usr/lib/sendmail", "-t", Mode::Deliver, true, false, nullptr, "", Body::Unspecified, {}},
      {"mailq", "/usr/bin/mailq", "", Mode::ListQueue, false, false, nullptr, "", Body::Unspecified, {}},
      {"sendmail -bp", "sendmail", "-bp", Mode::ListQueue, false, false, nullptr, "", Body::Unspecified, {}},
      {"newaliases", "/usr/sbin/newaliases", "", Mode::Noop, false, false, nullptr, "", Body::Unspecified, {}},
      {"-bi", "sendmail", "-bi", Mode::Noop, false, false, nullptr, "", Body::Unspecified, {}},
      {"Symfony -bs", "sendmail", "-bs", Mode::Smtp, false, false, nullptr, "", Body::Unspecified, {}},
      {"-r and cluster", "sendmail", "-ti -r me@x.example", Mode::Deliver, true, true, "me@x.example", "",
       Body::Unspecified, {}},
      {"null sender", "sendmail", "-f <> -B 7BIT u@x.example", Mode::Deliver, false, false, "<>", "",
       Body::SevenBit, {"u@x.example"}},
  };
  for (const auto& row : table) {
    CAPTURE(row.caller);
    auto r = parse_options(row.argv0, split(row.args));
    REQUIRE(r.ok());
    CHECK(r->mode == row.mode);
    CHECK(r->from_headers == row.t);
    CHECK(r->ignore_dots == row.i);
    CHECK(r->sender_given == (row.sender != nullptr));
    if (row.sender) CHECK(r->sender == row.sender);
    CHECK(r->full_name == row.full_name);
    CHECK(r->body == row.body);
    CHECK(r->recipients == row.rcpts);
  }
}

TEST_CASE("sendmail DSN options, -C and -v") {
  auto r = parse_options("sendmail", {"-N", "success,delay", "-Rhdrs", "-V", "env-1", "-C", "/tmp/t.yaml", "-v", "u@x"});
  REQUIRE(r.ok());
  CHECK(r->notify.given);
  CHECK(r->notify.success);
  CHECK(r->notify.delay);
  CHECK_FALSE(r->notify.failure);
  CHECK(r->ret == smtp::Ret::Hdrs);
  CHECK(r->envid == "env-1");
  CHECK(r->config == "/tmp/t.yaml");
  CHECK(r->verbose);
}

TEST_CASE("sendmail command line errors") {
  const std::vector<std::vector<std::string>> bad = {
      {"-x"}, {"-f"}, {"-bd"}, {"-Rall"}, {"-Nsometimes"}, {"-B", "9BIT"}, {"-bp", "u@x.example"}, {"-ti", "-q"},
  };
  for (const auto& args : bad) {
    CAPTURE(args.front());
    auto r = parse_options("sendmail", args);
    REQUIRE_FALSE(r.ok());
    CHECK_FALSE(r.error().message.empty());
  }
  CHECK(usage("/usr/sbin/sendmail").rfind("usage: sendmail ", 0) == 0);
}

TEST_CASE("sendmail input: line ends and the lone dot") {
  bool dot = false;
  CHECK(normalize_input("a\nb\r\nc", false, &dot) == "a\r\nb\r\nc\r\n");
  CHECK_FALSE(dot);
  CHECK(normalize_input("a\n.\nafter\n", false, &dot) == "a\r\n");
  CHECK(dot);
  CHECK(normalize_input("a\n.\nafter\n", true, &dot) == "a\r\n.\r\nafter\r\n");
  CHECK_FALSE(dot);
  CHECK(normalize_input("a\rb\n..\n", false) == "a\r\nb\r\n..\r\n");
  CHECK(normalize_input("", false).empty());
}

TEST_CASE("address lists: display names, groups, comments, folding") {
  auto r = parse_address_list(R"("Doe, John" <john@x.example>, jane@y.example (Jane), Team: a@t.example, <b@t.example>;, undisclosed-recipients:;)");
  REQUIRE(r.ok());
  CHECK(*r == std::vector<std::string>{"john@x.example", "jane@y.example", "a@t.example", "b@t.example"});
  auto route = parse_address_list("<@relay.example:u@z.example>");
  REQUIRE(route.ok());
  CHECK(*route == std::vector<std::string>{"u@z.example"});
  CHECK_FALSE(parse_address_list("John <john@x.example").ok());
  CHECK_FALSE(parse_address_list("nobody").ok());
  CHECK_FALSE(parse_address_list("\"open <a@b.example>").ok());
}

TEST_CASE("-t takes To, Cc and Bcc and Bcc is removed") {
  const std::string m =
      "From: me@h.example\r\nTo: a@x.example,\r\n b@x.example\r\nCc: \"C\" <c@x.example>\r\n"
      "Bcc: hidden@x.example,\r\n\talso@x.example\r\nSubject: hi\r\n\r\nBcc: body text stays\r\n";
  auto r = recipients_from_headers(m);
  REQUIRE(r.ok());
  CHECK(*r == std::vector<std::string>{"a@x.example", "b@x.example", "c@x.example", "hidden@x.example", "also@x.example"});
  const std::string stripped = remove_bcc(m);
  CHECK(stripped ==
        "From: me@h.example\r\nTo: a@x.example,\r\n b@x.example\r\nCc: \"C\" <c@x.example>\r\n"
        "Subject: hi\r\n\r\nBcc: body text stays\r\n");
  CHECK_FALSE(recipients_from_headers("To: broken <a@x\r\n\r\n").ok());
}

TEST_CASE("local prelude: Received names the user; From, Date, Message-ID only when missing") {
  LocalOrigin o{"alice", 1000, "Alice A", "h.example", "ID1", "Sun, 29 Nov 2026 16:00:00 +0000", "<ID1@h.example>"};
  const std::string p = local_prelude("Subject: x\r\n\r\nbody\r\n", o);
  CHECK(p.rfind("Received: from local user alice (uid 1000)\r\n\tby h.example (tern) with LOCAL id ID1;", 0) == 0);
  CHECK(p.find("From: \"Alice A\" <alice@h.example>\r\n") != std::string::npos);
  CHECK(p.find("Date: Sun, 29 Nov 2026 16:00:00 +0000\r\n") != std::string::npos);
  CHECK(p.find("Message-ID: <ID1@h.example>\r\n") != std::string::npos);
  const std::string q = local_prelude("From: x@y\r\nDate: d\r\nMessage-Id: <m@y>\r\n\r\n", o);
  CHECK(q.find("From:") == std::string::npos);
  CHECK(q.find("Date:") == std::string::npos);
  CHECK(q.find("Message-ID:") == std::string::npos);
  o.full_name = "Evil\"\r\nBcc: x";
  CHECK(local_prelude("", o).find("From: \"EvilBcc: x\" <alice@h.example>\r\n") != std::string::npos);
}

TEST_CASE("a body without a blank line before it gets one") {
  std::string m = "just text\r\n";
  separate_body(m);
  CHECK(m == "\r\njust text\r\n");
  m = "Subject: x\r\nbody line\r\n";
  separate_body(m);
  CHECK(m == "Subject: x\r\n\r\nbody line\r\n");
  m = "Subject: x\r\n\r\nbody\r\n";
  separate_body(m);
  CHECK(m == "Subject: x\r\n\r\nbody\r\n");
  m = "Subject: only\r\n";
  separate_body(m);
  CHECK(m == "Subject: only\r\n");
}

TEST_CASE("submission protocol: the client's request is what ternd's reader takes") {
  Submission s;
  s.sender_given = true;
  s.sender = "dev@x.example";
  s.mail_params = {"RET=HDRS"};
  s.full_name = "Cron\nDaemon";
  s.rcpts = {"a@y.example", "alice"};
  s.notify = "SUCCESS,FAILURE";
  const std::string msg = "Subject: x\r\n\r\nhi\r\n";
  const std::string wire = format_request(s, msg.size()) + msg;
  RequestReader r("h.example", 1000, 10);
  // Fed a byte at a time: the reader must not depend on how the socket splits the stream.
  RequestReader::State st = RequestReader::State::More;
  size_t i = 0;
  for (; i < wire.size() && st == RequestReader::State::More; ++i) st = r.feed(wire.substr(i, 1));
  REQUIRE(st == RequestReader::State::Data);
  CHECK(r.take_leftover() + wire.substr(i) == msg);
  const Request& q = r.request();
  CHECK(q.sender_given);
  CHECK(q.sender == "dev@x.example");
  CHECK(q.mail_params == std::vector<std::string>{"RET=HDRS"});
  CHECK(q.full_name == "CronDaemon");
  REQUIRE(q.rcpts.size() == 2);
  CHECK(q.rcpts[0].address == "a@y.example");
  CHECK(q.rcpts[1].address == "alice@h.example");  // qualified with ternd's hostname
  CHECK(q.rcpts[1].params == std::vector<std::string>{"NOTIFY=SUCCESS,FAILURE"});
  CHECK(q.size == msg.size());
}

TEST_CASE("submission protocol: refusals carry sysexits codes") {
  struct Row {
    std::string wire;
    int code;
  };
  const std::vector<Row> rows = {
      {"DATA 5\n", kExitDataErr},                           // no recipients
      {"TO <a@x.example>\nDATA 5000\n", kExitDataErr},      // over max size
      {"TO <a b@x.example>\n", kExitDataErr},               // malformed address
      {"TO <a@x.example> NOTIFY=SOMETIMES\n", kExitUsage},  // bad parameter
      {"TO <a@x.example>\nTO <b@x.example>\nTO <c@x.example>\n", kExitDataErr},  // over max_recipients
      {"HELO\n", kExitUsage},
      {std::string(kMaxLine + 10, 'x'), kExitUsage},
  };
  for (const auto& row : rows) {
    CAPTURE(row.wire.substr(0, 40));
    RequestReader r("h.example", 1000, 2);
    REQUIRE(r.feed(row.wire) == RequestReader::State::Refused);
    CHECK(r.refusal().code == row.code);
    CHECK_FALSE(r.refusal().text.empty());
  }
  RequestReader list("h.example", 1000, 2);
  CHECK(list.feed("LIST\n") == RequestReader::State::List);
  RequestReader null_sender("h.example", 1000, 2);
  CHECK(null_sender.feed("FROM <>\nTO <a@x.example>\nDATA 1\n") == RequestReader::State::Data);
  CHECK(null_sender.request().sender_given);
  CHECK(null_sender.request().sender.empty());
}

TEST_CASE("submission protocol: answers") {
  auto ok = parse_answer("OK 0123ABC\n");
  CHECK(ok.ok);
  CHECK(ok.text == "0123ABC");
  auto err = parse_answer("ERR 65 no recipients\n");
  CHECK_FALSE(err.ok);
  CHECK(err.code == kExitDataErr);
  CHECK(err.text == "no recipients");
  auto odd = parse_answer("garbage");
  CHECK_FALSE(odd.ok);
  CHECK(odd.code == kExitTempFail);
}

TEST_CASE("-bs: an SMTP session hands each message over and replies with the verdict") {
  SmtpSession s("h.example", 1000);
  CHECK(s.greeting() == "220 h.example ESMTP tern-sendmail\r\n");
  // Pipelined: everything up to the second message in one read.
  std::string out = s.feed(
      "EHLO client\r\nMAIL FROM:<a@x.example> BODY=8BITMIME\r\nRCPT TO:<b@y.example>\r\nRCPT TO:<c@y.example>\r\n"
      "DATA\r\nSubject: one\r\n\r\n..dot\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<d@y.example>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
  CHECK(out.rfind("250-h.example\r\n", 0) == 0);
  CHECK(out.find("354 ") != std::string::npos);
  REQUIRE(s.has_message());
  CHECK(s.message().sender == "a@x.example");
  CHECK(s.message().mail_params == std::vector<std::string>{"BODY=8BITMIME"});
  CHECK(s.message().rcpts == std::vector<std::string>{"b@y.example", "c@y.example"});
  CHECK(s.message().data == "Subject: one\r\n\r\n.dot\r\n");
  out = s.message_done(true, 0, "ID1");
  CHECK(out.rfind("250 2.0.0 Ok: queued as ID1\r\n", 0) == 0);
  REQUIRE(s.has_message());  // the second, from the input kept meanwhile
  CHECK(s.message().sender.empty());
  CHECK(s.message().rcpts == std::vector<std::string>{"d@y.example"});
  out = s.message_done(false, kExitDataErr, "message too big");
  CHECK(out.rfind("554 5.6.0 message too big\r\n", 0) == 0);
  CHECK(out.find("221 ") != std::string::npos);
  CHECK(s.finished());
}

// DSN (RFC 3461) in the session, as a client that asks for it (Symfony Mailer can): RET and
// ENVID on MAIL, NOTIFY and ORCPT per recipient, handed over as given; bad values get 501.
TEST_CASE("-bs: DSN parameters are offered, checked and handed over per recipient") {
  SmtpSession s("h.example", 1000);
  std::string out = s.feed("EHLO c\r\n");
  CHECK(out.find("250-DSN\r\n") != std::string::npos);
  CHECK(s.feed("MAIL FROM:<a@x.example> RET=HDRS ENVID=env+2B1\r\n") == "250 2.1.0 Ok\r\n");
  CHECK(s.feed("RCPT TO:<b@y.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@y.example\r\n") == "250 2.1.5 Ok\r\n");
  CHECK(s.feed("RCPT TO:<c@y.example>\r\n") == "250 2.1.5 Ok\r\n");
  CHECK(s.feed("RCPT TO:<d@y.example> NOTIFY=NEVER,SUCCESS\r\n").rfind("501 ", 0) == 0);
  CHECK(s.feed("RCPT TO:<d@y.example> XFOO=1\r\n").rfind("555 ", 0) == 0);
  s.feed("DATA\r\nx\r\n.\r\n");
  REQUIRE(s.has_message());
  const SessionMessage& m = s.message();
  CHECK(m.mail_params == std::vector<std::string>{"RET=HDRS", "ENVID=env+2B1"});
  REQUIRE(m.rcpt_params.size() == 2);
  CHECK(m.rcpt_params[0] == std::vector<std::string>{"NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b@y.example"});
  CHECK(m.rcpt_params[1].empty());
  Submission sub;
  sub.sender_given = true;
  sub.sender = m.sender;
  sub.mail_params = m.mail_params;
  sub.rcpts = m.rcpts;
  sub.rcpt_params = m.rcpt_params;
  CHECK(format_request(sub, 3) ==
        "FROM <a@x.example> RET=HDRS ENVID=env+2B1\nTO <b@y.example> NOTIFY=SUCCESS,FAILURE "
        "ORCPT=rfc822;b@y.example\nTO <c@y.example>\nDATA 3\n");
}

TEST_CASE("-bs: out of order and bad commands") {
  SmtpSession s("h.example", 1000);
  CHECK(s.feed("RCPT TO:<b@y.example>\r\n").rfind("503 ", 0) == 0);
  CHECK(s.feed("DATA\r\n").rfind("503 ", 0) == 0);
  CHECK(s.feed("MAIL FROM:<a@x.example> NOTIFY=NEVER\r\n").rfind("555 ", 0) == 0);
  CHECK(s.feed("MAIL FROM:<a@x.example> RET=MOST\r\n").rfind("501 ", 0) == 0);
  CHECK(s.feed("MAIL FROM:<a@x.example>\r\n").rfind("250 ", 0) == 0);
  CHECK(s.feed("DATA\r\n").rfind("554 ", 0) == 0);  // no recipients
  CHECK(s.feed("RCPT TO:<not an address>\r\n").rfind("501 ", 0) == 0);
  CHECK(s.feed("STARTTLS\r\n").rfind("502 ", 0) == 0);
  CHECK(s.feed("RSET\r\n").rfind("250 ", 0) == 0);
  CHECK_FALSE(s.has_message());
  CHECK_FALSE(s.finished());
}

TEST_CASE("config: submit.socket and submit.maildrop, defaults and relative paths") {
  auto d = config::load_string("queue_dir: /var/spool/tern\nhostname: h.example\n", "/etc/tern/tern.yaml");
  REQUIRE(d.ok());
  CHECK(d->submit.socket == "/run/tern/submit.sock");
  CHECK(d->submit.maildrop == "/var/spool/tern-maildrop");
  auto s = config::load_string(
      "queue_dir: /var/spool/tern\nhostname: h.example\nsubmit:\n  socket: run/s.sock\n  maildrop: /srv/drop\n",
      "/etc/tern/tern.yaml");
  REQUIRE(s.ok());
  CHECK(s->submit.socket == "/etc/tern/run/s.sock");
  CHECK(s->submit.maildrop == "/srv/drop");
  auto bad = config::load_string("queue_dir: /q\nhostname: h.example\nsubmit:\n  sockett: /x\n", "/etc/tern/tern.yaml");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("sockett") != std::string::npos);
}

TEST_CASE("-bs: a message over the size limit is read to its dot and refused with 552") {
  SmtpSession s("h.example", 50);
  std::string out = s.feed("MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n");
  for (int i = 0; i < 10; ++i) out += s.feed("0123456789012345678901234567890123456789\r\n");
  out += s.feed(".\r\nNOOP\r\n");
  CHECK_FALSE(s.has_message());
  CHECK(out.find("552 5.3.4 message too big\r\n250 2.0.0 Ok\r\n") != std::string::npos);
  CHECK(s.feed("DATA\r\n").rfind("503 ", 0) == 0);  // the transaction ended with the refusal
}
