// SMTP client session: greeting, EHLO/HELO fallback, one transaction at a time with or
// without pipelining, and the per-recipient verdicts.
#include "delivery/client_session.hpp"

#include "common/strings.hpp"
#include "smtp/base64.hpp"
#include "smtp/sasl.hpp"
#include "delivery/outcome.hpp"

namespace tern::delivery {

Capabilities parse_ehlo(const smtp::Reply& r) {
  Capabilities c;
  c.esmtp = true;
  for (size_t i = 1; i < r.lines.size(); ++i) {  // the first line is the server's name
    const std::string_view line = r.lines[i];
    const std::string_view kw = line.substr(0, line.find(' '));
    if (iequals(kw, "PIPELINING")) c.pipelining = true;
    else if (iequals(kw, "8BITMIME")) c.eightbitmime = true;
    else if (iequals(kw, "SMTPUTF8")) c.smtputf8 = true;
    else if (iequals(kw, "DSN")) c.dsn = true;
    else if (iequals(kw, "STARTTLS")) c.starttls = true;
    else if (iequals(kw, "AUTH")) {
      // "AUTH PLAIN LOGIN CRAM-MD5": the mechanisms, space separated.
      std::string_view rest = line.size() > 5 ? line.substr(5) : std::string_view{};
      while (!rest.empty()) {
        const size_t sp = rest.find(' ');
        const std::string_view mech = rest.substr(0, sp);
        if (iequals(mech, "PLAIN")) c.auth_plain = true;
        if (iequals(mech, "LOGIN")) c.auth_login = true;
        if (sp == std::string_view::npos) break;
        rest.remove_prefix(sp + 1);
      }
    }
    else if (iequals(kw, "SIZE")) {
      c.size = true;
      if (line.size() > 5) {
        try {
          c.max_size = std::stoull(std::string(trim(line.substr(5))));
        } catch (...) {
          c.max_size = 0;  // unparsable limit: treat as none announced
        }
      }
    }
  }
  return c;
}

void ClientSession::send(std::string line) {
  out_ += line;
  out_ += "\r\n";
}

ClientSession::Wait ClientSession::waiting_for() const noexcept {
  switch (state_) {
    case State::Greeting: return Wait::Greeting;
    case State::Ehlo:
    case State::Helo:
    case State::StartTls:
    case State::Handshake:
    case State::Auth:
    case State::Rset: return Wait::Helo;
    case State::Txn:
      if (answered_ >= cmds_.size()) return Wait::None;
      switch (cmds_[answered_]) {
        case Cmd::Mail: return Wait::Mail;
        case Cmd::Rcpt: return Wait::Rcpt;
        case Cmd::Data: return Wait::Data;
      }
      return Wait::Mail;
    case State::Body: return Wait::DataBlock;
    case State::DataEnd: return Wait::DataEnd;
    case State::Quit: return Wait::Quit;
    case State::Ready:
    case State::Closed: return Wait::None;
  }
  return Wait::None;
}

void ClientSession::feed(std::string_view bytes) {
  if (state_ == State::Closed) return;
  std::vector<smtp::Reply> replies;
  auto st = parser_.feed(bytes, replies);
  for (size_t i = 0; i < replies.size(); ++i) {
    if (state_ == State::Closed) return;
    ++replies_;
    on_reply(replies[i]);
    if (state_ == State::Handshake && (i + 1 < replies.size() || parser_.has_pending())) {
      // Bytes after the 220 to STARTTLS, before the handshake: injected by whoever sits in
      // the plaintext path, to be read as if they came inside TLS (the "STARTTLS
      // injection" of 2021). The connection is not to be trusted at all.
      fail_setup("TLS: the server sent data after its 220 to STARTTLS before the handshake "
                 "(possible injection attack); connection dropped", "4.7.0", true);
      return;
    }
  }
  if (!st.ok()) on_closed("4.5.0", "protocol error: " + st.error().message);
}

void ClientSession::fail_setup(std::string why, std::string status, bool tls) {
  setup_failure_ = SetupFailure{std::move(status), std::move(why), tls};
  // After a broken STARTTLS exchange nothing more is said in plaintext.
  if (!tls) send("QUIT");
  state_ = State::Closed;
}

// The EHLO reply is in (first, or again inside TLS): STARTTLS, then AUTH, then ready.
void ClientSession::after_ehlo() {
  if (!sec_.tls_active && sec_.starttls && caps_.starttls) {
    send("STARTTLS");  // alone: exactly one reply is read before the handshake
    state_ = State::StartTls;
    return;
  }
  if (!sec_.tls_active && sec_.require_tls)
    return fail_setup("TLS is required but the server does not offer STARTTLS", "4.7.4", true);
  if (sec_.auth && !authenticated_) {
    if (!sec_.tls_active) return fail_setup("credentials are never sent without TLS", "4.7.4", true);
    const auto& a = *sec_.auth;
    if (caps_.auth_plain) {
      send("AUTH PLAIN " + smtp::sasl::sasl_plain_response(a.username, a.password));
    } else if (caps_.auth_login) {
      send("AUTH LOGIN");
      auth_step_ = 0;
    } else {
      return fail_setup("the server offers neither AUTH PLAIN nor AUTH LOGIN", "4.7.0");
    }
    state_ = State::Auth;
    return;
  }
  state_ = State::Ready;
}

// RFC 4954: 235 authenticated; 334 asks for the next LOGIN step; anything else is a
// failure of tern's own configuration (wrong credentials), never the recipient's: the
// mail waits (4.7.8) rather than bounces. The reply text is logged; the secret never is.
void ClientSession::on_auth_reply(const smtp::Reply& r) {
  if (r.code == 235) {
    authenticated_ = true;
    state_ = State::Ready;
    return;
  }
  if (r.code == 334 && !caps_.auth_plain && auth_step_ < 2) {
    send(smtp::base64_encode(auth_step_ == 0 ? sec_.auth->username : sec_.auth->password));
    ++auth_step_;
    return;
  }
  fail_setup("authentication as " + sec_.auth->username + " failed: " + r.str(), "4.7.8");
}

void ClientSession::on_tls_started() {
  if (state_ != State::Handshake) return;
  sec_.tls_active = true;
  caps_ = Capabilities{};
  send("EHLO " + helo_);
  state_ = State::Ehlo;
}

void ClientSession::on_reply(const smtp::Reply& r) {
  switch (state_) {
    case State::Greeting:
      if (r.code / 100 == 2) {
        send("EHLO " + helo_);
        state_ = State::Ehlo;
      } else {
        fail_setup("greeting: " + r.str());
      }
      return;
    case State::Ehlo:
      if (r.positive()) {
        caps_ = parse_ehlo(r);
        after_ehlo();
      } else if (sec_.require_tls || sec_.auth) {
        fail_setup("EHLO: " + r.str(), "4.7.4", true);  // STARTTLS and AUTH need ESMTP
      } else if (r.permanent()) {
        send("HELO " + helo_);  // RFC 5321 §3.2: an old server may not know EHLO
        state_ = State::Helo;
      } else {
        fail_setup("EHLO: " + r.str());
      }
      return;
    case State::Helo:
      if (r.positive()) {
        caps_ = Capabilities{};
        state_ = State::Ready;
      } else {
        fail_setup("HELO: " + r.str());
      }
      return;
    case State::StartTls:
      if (r.code == 220) {
        state_ = State::Handshake;  // the driver stacks TLS on the connection now
      } else if (sec_.require_tls) {
        fail_setup("STARTTLS refused: " + r.str(), "4.7.4", true);
      } else {
        state_ = State::Ready;  // opportunistic: go on in plaintext, as offered
      }
      return;
    case State::Handshake:
      // A reply while the handshake should be running: the feed() check above catches
      // one in the same read; this one came in a later plaintext read.
      fail_setup("TLS: unexpected plaintext from the server during the handshake", "4.7.0", true);
      return;
    case State::Auth:
      return on_auth_reply(r);
    case State::Rset:
      if (r.positive()) return begin_mail();
      decide_all(from_reply(r, "RSET: ", Fate::Deferred), true);
      result_->next_host = true;
      send("QUIT");
      state_ = State::Closed;
      return;
    case State::Txn:
      return on_txn_reply(r);
    case State::DataEnd: {
      if (r.code == 421) server_closing_ = true;  // RFC 5321 §3.8: the server is closing
      const Outcome o = from_reply(r, "");
      for (size_t i = 0; i < rcpt_.size(); ++i)
        if (accepted_[i]) rcpt_[i] = o;
      return finish_txn();
    }
    case State::Quit:
      state_ = State::Closed;
      return;
    case State::Body:
      // A reply while the body is still going out (a server giving up early, e.g. 552 or
      // 421): whatever it says, the transaction cannot complete as sent.
      decide_all(from_reply(r, "during data: ", r.permanent() ? Fate::Failed : Fate::Deferred), true);
      state_ = State::Closed;
      return;
    case State::Ready:
    case State::Closed:
      // An unsolicited reply (typically 421 before an idle close): the connection is over.
      state_ = State::Closed;
      return;
  }
}

void ClientSession::start(Transaction t) {
  txn_ = std::move(t);
  rcpt_.assign(txn_.rcpts.size(), std::nullopt);
  accepted_.assign(txn_.rcpts.size(), false);
  mail_ok_ = false;
  decided_any_ = false;
  sent_ = answered_ = 0;
  cmds_.clear();
  const uint64_t size = txn_.size;
  // Decide early what the next hop told us it cannot take (RFC 1870 §6, RFC 6531 §3.4).
  if (caps_.size && caps_.max_size && size > caps_.max_size) {
    decide_all(Outcome::make(Fate::Failed, "5.3.4",
                             "Message too big for the next hop (its limit is " + std::to_string(caps_.max_size) +
                                 " bytes)"),
               false);
    result_->next_host = false;
    return;
  }
  if (txn_.smtputf8 && !caps_.smtputf8) {
    decide_all(Outcome::make(Fate::Failed, "5.6.7", "The next hop does not support SMTPUTF8 (RFC 6531)"), false);
    return;
  }
  if (used_) {
    send("RSET");
    state_ = State::Rset;
  } else {
    begin_mail();
  }
}

void ClientSession::begin_mail() {
  std::string mail = "MAIL FROM:<" + txn_.sender + ">";
  if (caps_.size) mail += " SIZE=" + std::to_string(txn_.size);
  // 8-bit data to a server without 8BITMIME is sent as is (what Postfix does by default).
  if (txn_.eight_bit && caps_.eightbitmime) mail += " BODY=8BITMIME";
  if (txn_.smtputf8) mail += " SMTPUTF8";
  if (caps_.dsn)
    for (const auto& p : txn_.mail_dsn) mail += " " + p;
  cmds_.push_back(Cmd::Mail);
  std::vector<std::string> lines{mail};
  for (size_t i = 0; i < txn_.rcpts.size(); ++i) {
    cmds_.push_back(Cmd::Rcpt);
    std::string rcpt = "RCPT TO:<" + txn_.rcpts[i] + ">";
    if (caps_.dsn && i < txn_.rcpt_dsn.size())
      for (const auto& p : txn_.rcpt_dsn[i]) rcpt += " " + p;
    lines.push_back(rcpt);
  }
  cmds_.push_back(Cmd::Data);
  lines.push_back("DATA");
  state_ = State::Txn;
  lines_ = std::move(lines);
  send_next_commands();
}

// With PIPELINING everything up to DATA goes at once (RFC 2920 §3.1); without it, one
// command per reply, and no DATA when no recipient was accepted.
void ClientSession::send_next_commands() {
  if (caps_.pipelining) {
    while (sent_ < lines_.size()) send(lines_[sent_++]);
    return;
  }
  if (sent_ == answered_ && sent_ < lines_.size()) send(lines_[sent_++]);
}

void ClientSession::on_txn_reply(const smtp::Reply& r) {
  const Cmd cmd = cmds_[answered_];
  const size_t index = answered_ - 1;  // for RCPT replies
  ++answered_;
  if (r.code == 421) server_closing_ = true;
  switch (cmd) {
    case Cmd::Mail:
      if (r.positive()) mail_ok_ = true;
      else mail_refusal_ = from_reply(r, "MAIL: ");
      break;
    case Cmd::Rcpt:
      if (!mail_ok_) break;  // decided by the MAIL reply
      if (r.positive()) {
        accepted_[index] = true;
      } else {
        const bool too_many = r.code == 452 || r.enhanced == "4.5.3";
        Outcome o = from_reply(r, "");
        if (too_many && !server_closing_ && o.fate == Fate::Deferred) o.fate = Fate::RetryNow;
        rcpt_[index] = std::move(o);
        decided_any_ = true;
      }
      break;
    case Cmd::Data: {
      bool any = false;
      for (bool a : accepted_) any |= a;
      if (r.code == 354) {
        if (!mail_ok_ || !any) {
          // A server that says 354 with no recipient accepted: sending data could deliver an
          // empty message; drop the connection instead.
          decide_all(from_reply(r, "354 to DATA without accepted recipients: ", Fate::Deferred), true);
          state_ = State::Closed;
          return;
        }
        state_ = State::Body;  // the driver streams the body, then calls body_sent()
        return;
      }
      if (mail_ok_) {
        const Outcome o = from_reply(r, "DATA: ", r.temporary() ? Fate::Deferred : Fate::Failed);
        for (size_t i = 0; i < rcpt_.size(); ++i)
          if (accepted_[i]) rcpt_[i] = o;
      }
      return finish_txn();
    }
  }
  if (!caps_.pipelining) {
    if (!mail_ok_ || (answered_ == cmds_.size() - 1 && [&] {
          for (bool a : accepted_)
            if (a) return false;
          return true;
        }())) {
      // MAIL refused, or every RCPT refused: no DATA. The next transaction starts with RSET.
      return finish_txn();
    }
    send_next_commands();
  }
}

void ClientSession::body_sent() {
  if (state_ == State::Body) state_ = State::DataEnd;
}

void ClientSession::decide_all(const Outcome& o, bool only_open) {
  TxnResult res;
  bool any_accepted = false;
  for (bool a : accepted_) any_accepted |= a;
  for (size_t i = 0; i < txn_.rcpts.size(); ++i) {
    if (only_open && i < rcpt_.size() && rcpt_[i]) res.rcpts.push_back(*rcpt_[i]);
    else res.rcpts.push_back(o);
    // "Too many recipients" means "send the rest in another transaction" only if this one
    // took some; a 452 to the very first recipient is a plain temporary failure.
    if (res.rcpts.back().fate == Fate::RetryNow && !any_accepted) res.rcpts.back().fate = Fate::Deferred;
  }
  res.dsn_passed = caps_.dsn;
  result_ = std::move(res);
}

void ClientSession::finish_txn() {
  used_ = true;
  if (!mail_ok_ && mail_refusal_) {
    // 4xx at MAIL: this host cannot take mail now, try the next one; 5xx: refused for good.
    decide_all(*mail_refusal_, false);
    result_->next_host = mail_refusal_->fate == Fate::Deferred;
  } else {
    decide_all(Outcome::make(Fate::Deferred, "4.4.2", "no reply"), true);
  }
  mail_refusal_.reset();
  if (server_closing_) {
    state_ = State::Closed;
  } else {
    state_ = State::Ready;
  }
}

void ClientSession::on_closed(std::string status, std::string why) {
  switch (state_) {
    case State::Greeting:
    case State::Ehlo:
    case State::Helo:
    case State::Auth:
      setup_failure_ = SetupFailure{"4.4.2", std::move(why), false};
      break;
    case State::StartTls:
    case State::Handshake:
      setup_failure_ = SetupFailure{"4.7.5", std::move(why), true};
      break;
    case State::Rset:
    case State::Txn:
      decide_all(Outcome::make(Fate::Deferred, std::move(status), std::move(why)), true);
      result_->next_host = !decided_any_;
      break;
    case State::Body:
      decide_all(Outcome::make(Fate::Deferred, std::move(status), why + " (while sending the data)"), true);
      break;
    case State::DataEnd:
      // The data went out but no answer came: the message may or may not have been taken.
      // Deferring risks one duplicate, never a loss (RFC 5321 §6.1).
      decide_all(Outcome::make(Fate::Deferred, std::move(status), why + " (after the data was sent)"), true);
      break;
    default:
      break;
  }
  state_ = State::Closed;
}

void ClientSession::quit() {
  if (state_ != State::Ready) {
    state_ = State::Closed;
    return;
  }
  send("QUIT");
  state_ = State::Quit;
}

}  // namespace tern::delivery
