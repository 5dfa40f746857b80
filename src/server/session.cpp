// Inbound session: command table, transaction state, DATA handling and the replies
// (RFC 5321 §4.1, §4.3.2 sequencing; RFC 2920 pipelining; RFC 1870 SIZE; RFC 3463 codes).
#include "server/session.hpp"

#include "common/date.hpp"
#include "common/limits.hpp"
#include "common/log_escape.hpp"
#include "common/strings.hpp"
#include "smtp/address.hpp"
#include "smtp/dsn_params.hpp"
#include "smtp/headers.hpp"
#include "smtp/reply.hpp"

namespace tern::server {

namespace {
constexpr unsigned bit(Session::State s) { return 1u << static_cast<unsigned>(s); }
constexpr unsigned kAnyCommandState = bit(Session::State::Ready) | bit(Session::State::Greeted) |
                                      bit(Session::State::Mail) | bit(Session::State::Rcpt) |
                                      bit(Session::State::Bdat);
constexpr unsigned kOutsideBdat = kAnyCommandState & ~bit(Session::State::Bdat);
}  // namespace

// One row per verb: where it is allowed, the reply when it is not, its step, and for a
// command followed by data (BDAT) what to do with that data when the command is refused.
struct Session::CommandSpec {
  Verb verb;
  unsigned states;
  const char* refusal;  // "503 5.5.1 text" when used in another state
  void (Session::*run)(const smtp::Command&);
  void (Session::*refuse)(const smtp::Command&) = nullptr;  // instead of the plain 503
};

const Session::CommandSpec Session::kCommands[] = {
    {Verb::Ehlo, kAnyCommandState, "", &Session::cmd_ehlo},
    {Verb::Helo, kAnyCommandState, "", &Session::cmd_helo},
    {Verb::Mail, kOutsideBdat, "", &Session::cmd_mail},
    {Verb::Rcpt, bit(State::Mail) | bit(State::Rcpt), "Error: need MAIL command",
     &Session::cmd_rcpt},
    {Verb::Data, bit(State::Mail) | bit(State::Rcpt), "Error: need RCPT command",
     &Session::cmd_data},
    {Verb::Bdat, bit(State::Rcpt) | bit(State::Bdat), "Error: need RCPT command", &Session::cmd_bdat,
     &Session::skip_bdat},
    {Verb::Rset, kAnyCommandState, "", &Session::cmd_rset},
    {Verb::Noop, kAnyCommandState, "", &Session::cmd_noop},
    {Verb::Quit, kAnyCommandState, "", &Session::cmd_quit},
    {Verb::Vrfy, kAnyCommandState, "", &Session::cmd_vrfy},
    {Verb::Help, kAnyCommandState, "", &Session::cmd_help},
    {Verb::NonSmtp, kAnyCommandState, "", &Session::cmd_non_smtp},
    {Verb::Starttls, bit(State::Ready) | bit(State::Greeted), "Error: MAIL transaction in progress",
     &Session::cmd_starttls},
    {Verb::Auth, kAnyCommandState, "", &Session::cmd_auth},
};

Session::Session(std::shared_ptr<const SessionSettings> settings, ClientInfo client,
                 SessionHost& host)
    : settings_(std::move(settings)), client_(client), host_(host) {}

void Session::start() {
  emit(220, "", settings_->hostname + " ESMTP tern");
}

void Session::emit(int code, std::string_view enhanced, std::string_view text) {
  out_ += smtp::reply(code, enhanced, text);
}

void Session::close_with(int code, std::string_view enhanced, std::string_view text) {
  emit(code, enhanced, settings_->hostname + " " + std::string(text));
  if (state_ == State::Data || state_ == State::WaitCommit || state_ == State::Bdat ||
      state_ == State::BdatChunk)
    host_.abort_message();
  sasl_.reset();
  state_ = State::Closed;
}

// A reply caused by the client: counted against limits.max_errors (then 421, close).
void Session::error(int code, std::string_view enhanced, std::string_view text) {
  emit(code, enhanced, text);
  std::string what = "reject: " + std::to_string(code) + " " + std::string(enhanced) +
                     (enhanced.empty() ? "" : " ") + std::string(text);
  if (!current_line_.empty()) {
    // Never log credentials: AUTH lines (a later issue) are reduced to their verb.
    const bool secret = istarts_with(current_line_, "AUTH");
    what += "; command=";
    // The line is the client's: escaped so it can neither forge log lines nor drive a terminal.
    what += secret ? std::string("AUTH ***") : log_safe(current_line_.substr(0, 200));
  }
  host_.log_event(what);
  host_.count_reject(code, enhanced);
  if (++errors_ >= settings_->limits.max_errors)
    close_with(421, "4.7.0", "Error: too many errors, closing connection");
}

void Session::feed(std::string_view bytes) {
  if (state_ == State::Closed) return;
  in_.append(bytes);
  pump();
}

void Session::pump() {
  while (state_ != State::Closed && state_ != State::WaitCommit && state_ != State::StartTls &&
         state_ != State::WaitAuth &&
         in_pos_ < in_.size()) {
    if (skip_octets_ > 0) {  // a refused BDAT chunk: its octets are data, never commands
      const uint64_t n = std::min<uint64_t>(skip_octets_, in_.size() - in_pos_);
      in_pos_ += n;
      skip_octets_ -= n;
      continue;
    }
    if (state_ == State::Data) {
      feed_data();
      continue;
    }
    if (state_ == State::BdatChunk) {
      feed_chunk();
      continue;
    }
    const size_t nl = in_.find('\n', in_pos_);
    if (nl == std::string::npos) {
      if (in_.size() - in_pos_ > limits::kMaxCommandLine) {
        in_pos_ = in_.size();
        if (!discarding_long_line_) {
          discarding_long_line_ = true;
          abort_auth();
          error(500, "5.5.2", "Error: line too long");
        }
      }
      break;
    }
    std::string_view line(in_.data() + in_pos_, nl - in_pos_);
    in_pos_ = nl + 1;
    if (discarding_long_line_) {  // the tail of a line already refused
      discarding_long_line_ = false;
      continue;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() + 2 > limits::kMaxCommandLine) {
      abort_auth();
      error(500, "5.5.2", "Error: line too long");
      continue;
    }
    if (state_ == State::Auth) {  // a SASL response: credentials, never logged or parsed as a command
      current_line_ = "AUTH";
      auth_line(line);
      current_line_ = {};
      continue;
    }
    current_line_ = line;
    handle_line(line);
    current_line_ = {};
  }
  // Keep the unconsumed tail only; compact occasionally rather than per line.
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  } else if (in_pos_ > 64 * 1024) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
}

void Session::handle_line(std::string_view line) {
  const smtp::Command c = smtp::parse_command(line);
  if (c.verb == Verb::Unknown) {
    error(500, "5.5.2", "Error: command not recognized");
    return;
  }
  for (const auto& spec : kCommands) {
    if (spec.verb != c.verb) continue;
    if (!(spec.states & bit(state_))) {
      if (spec.refuse) return (this->*spec.refuse)(c);
      // RFC 3030 §3: no DATA, MAIL or RCPT inside a BDAT transaction.
      error(503, "5.5.1", state_ == State::Bdat ? "Error: BDAT transaction in progress" : spec.refusal);
      return;
    }
    (this->*spec.run)(c);
    return;
  }
  // Recognised but not offered: EXPN, AUTH, ETRN, TURN.
  error(502, "5.5.1", "Error: command not implemented");
}

void Session::reset_transaction() {
  // A BDAT transaction has a message begun at the queue; RSET, EHLO or a failure ends it.
  if (state_ == State::Bdat || state_ == State::BdatChunk) host_.abort_message();
  env_ = {};
  smtputf8_ = false;
  decoder_.reset();
  content_.clear();
  header_buf_.clear();
  header_end_.reset();
  headers_done_ = false;
  too_big_ = false;
  content_size_ = 0;
  received_count_ = 0;
  chunk_left_ = chunk_size_ = 0;
  chunk_last_ = false;
  if (state_ == State::Mail || state_ == State::Rcpt || state_ == State::Bdat ||
      state_ == State::BdatChunk)
    state_ = State::Greeted;
}

namespace {
// The HELO/EHLO argument ends up in tern's Received: header: refuse control characters
// (header injection), malformed UTF-8 (RFC 3629; a U-label must be well-formed too) and
// names no domain or address literal could be (RFC 5321 §4.1.1.1).
bool acceptable_helo(std::string_view arg) {
  if (arg.empty() || arg.size() > 255) return false;
  for (unsigned char ch : arg)
    if (ch < 0x21 || ch == 0x7f) return false;
  return valid_utf8(arg);
}
}  // namespace

void Session::cmd_helo(const smtp::Command& c) {
  if (!acceptable_helo(c.arg)) return error(501, "5.5.4", "Syntax: HELO hostname");
  reset_transaction();
  helo_ = std::string(c.arg);
  esmtp_ = false;
  state_ = State::Greeted;
  emit(250, "", settings_->hostname);
}

void Session::cmd_ehlo(const smtp::Command& c) {
  if (!acceptable_helo(c.arg)) return error(501, "5.5.4", "Syntax: EHLO hostname");
  reset_transaction();
  helo_ = std::string(c.arg);
  esmtp_ = true;
  state_ = State::Greeted;
  out_ += smtp::reply_lines(250, {
                                     settings_->hostname,
                                     "PIPELINING",
                                     "SIZE " + std::to_string(settings_->limits.max_message_size),
                                     "8BITMIME",
                                     "SMTPUTF8",
                                     "DSN",
                                     "ENHANCEDSTATUSCODES",
                                     "CHUNKING",  // RFC 3030 BDAT; BINARYMIME is not offered
                                 });
  if (starttls_offered()) {
    // The last line of the reply was "250 CHUNKING": make it a continuation and append.
    const size_t last = out_.rfind("250 CHUNKING\r\n");
    out_[last + 3] = '-';
    out_ += "250 STARTTLS\r\n";
  }
  if (settings_->auth_offered && tls_active()) {
    // RFC 4954 §4: offered only where it can be used: after TLS, so no password crosses the
    // network in the clear. The last line is the previous last one: continue it and append.
    const size_t last = out_.rfind("\r\n250 ");
    out_[last + 5] = '-';
    out_ += "250 AUTH PLAIN LOGIN\r\n";
  }
}

bool Session::starttls_offered() const noexcept {
  return settings_->tls_available && !client_.implicit_tls && !tls_;
}

// RFC 3207. Whatever the client sent after the STARTTLS line, before the handshake, is
// thrown away unread: a man in the middle could have injected it into the plaintext stream
// to have it executed inside the protected session (CVE-2011-0411).
void Session::cmd_starttls(const smtp::Command& c) {
  if (tls_) return error(503, "5.5.1", "Error: TLS already active");
  if (!starttls_offered()) return error(502, "5.5.1", "Error: command not implemented");
  if (!c.arg.empty()) return error(501, "5.5.4", "Syntax: STARTTLS");
  const size_t pipelined = in_.size() - in_pos_;
  if (pipelined > 0)
    host_.log_event("reject: " + std::to_string(pipelined) +
                    " byte(s) sent after STARTTLS before the TLS handshake discarded");
  in_pos_ = in_.size();
  emit(220, "2.0.0", "Ready to start TLS");
  state_ = State::StartTls;
}

void Session::on_tls_started(TlsSummary tls) {
  if (state_ == State::Closed) return;
  tls_ = std::move(tls);
  if (state_ != State::StartTls) return;  // implicit TLS: nothing was said yet
  // RFC 3207 §4.2: forget everything learnt from the client before the handshake.
  reset_transaction();
  helo_.clear();
  esmtp_ = false;
  in_.clear();
  in_pos_ = 0;
  state_ = State::Ready;
}

void Session::cmd_mail(const smtp::Command& c) {
  if (state_ == State::Ready) return error(503, "5.5.1", "Error: send HELO/EHLO first");
  if (state_ != State::Greeted) return error(503, "5.5.1", "Error: nested MAIL command");
  // A submission listener (RFC 6409 §4.3; RFC 4954 §6): no mail before AUTH, not even from
  // relay.networks.
  if (client_.auth_required && !authenticated_) return error(530, "5.7.0", "Authentication required");
  auto rest = smtp::strip_prefix(c.arg, "FROM:");
  if (!rest) return error(501, "5.5.4", "Syntax: MAIL FROM:<address>");
  // SMTPUTF8 may appear after the path, so parse the path permissively and check below.
  auto path = smtp::parse_path(*rest, true, false, esmtp_);
  if (!path) return error(501, "", path.error().message);
  auto params = smtp::parse_params(path->rest, esmtp_);
  if (!params) return error(501, "", params.error().message);
  if (!esmtp_ && !params->empty()) return error(555, "5.5.4", "ESMTP parameters need EHLO");

  uint64_t size = 0;
  bool seen_size = false, seen_body = false, seen_utf8 = false, seen_ret = false, seen_envid = false;
  std::vector<std::string> raw;
  for (const auto& p : *params) {
    if (p.keyword == "SIZE") {
      if (seen_size || !p.value) return error(501, "5.5.4", "Bad SIZE parameter");
      seen_size = true;
      const std::string& v = *p.value;
      if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos)
        return error(501, "5.5.4", "Bad SIZE parameter");
      size = std::stoull(v);
      if (size > settings_->limits.max_message_size)
        return error(552, "5.3.4", "Message size exceeds fixed maximum message size");
    } else if (p.keyword == "BODY") {
      if (seen_body || !p.value) return error(501, "5.5.4", "Bad BODY parameter");
      seen_body = true;
      const std::string body = to_upper(*p.value);
      if (body != "7BIT" && body != "8BITMIME")
        return error(501, "5.5.4", "Unsupported BODY type (7BIT or 8BITMIME)");
    } else if (p.keyword == "SMTPUTF8") {
      if (seen_utf8 || p.value) return error(501, "5.5.4", "SMTPUTF8 takes no value");
      seen_utf8 = true;
    } else if (p.keyword == "RET") {  // RFC 3461 §4.3
      if (seen_ret || !p.value) return error(501, "5.5.4", "Bad RET parameter");
      seen_ret = true;
      if (auto r = smtp::parse_ret(*p.value); !r) return error(501, "", r.error().message);
    } else if (p.keyword == "ENVID") {  // RFC 3461 §4.4
      if (seen_envid || !p.value) return error(501, "5.5.4", "Bad ENVID parameter");
      seen_envid = true;
      if (auto e = smtp::parse_envid(*p.value); !e) return error(501, "", e.error().message);
    } else {
      return error(555, "5.5.4", "Unsupported MAIL parameter " + p.keyword);
    }
    raw.push_back(p.raw);
  }
  if (path->address.utf8 && !seen_utf8)
    return error(553, "5.6.7", "Non-ASCII sender address needs SMTPUTF8");
  if (!host_.queue_has_room(size))
    return error(452, "4.3.1", "Insufficient system storage");

  env_ = {};
  env_.sender = path->address.mailbox();
  env_.mail_params = std::move(raw);
  smtputf8_ = seen_utf8;
  state_ = State::Mail;
  emit(250, "2.1.0", "Ok");
}

void Session::cmd_rcpt(const smtp::Command& c) {
  auto rest = smtp::strip_prefix(c.arg, "TO:");
  if (!rest) return error(501, "5.5.4", "Syntax: RCPT TO:<address>");
  // Parsed permissively so that a non-ASCII address without SMTPUTF8 gets the right reply.
  auto path = smtp::parse_path(*rest, false, true, true);
  if (!path) return error(501, "", path.error().message);
  if (path->address.utf8 && !smtputf8_)
    return error(553, "5.6.7", "Non-ASCII recipient address needs SMTPUTF8");
  auto params = smtp::parse_params(path->rest, smtputf8_);
  if (!params) return error(501, "", params.error().message);
  std::vector<std::string> raw;
  bool seen_notify = false, seen_orcpt = false;
  for (const auto& p : *params) {
    if (p.keyword == "NOTIFY") {  // RFC 3461 §4.1
      if (seen_notify || !p.value) return error(501, "5.5.4", "Bad NOTIFY parameter");
      seen_notify = true;
      if (auto n = smtp::parse_notify(*p.value); !n) return error(501, "", n.error().message);
    } else if (p.keyword == "ORCPT") {  // RFC 3461 §4.2
      if (seen_orcpt || !p.value) return error(501, "5.5.4", "Bad ORCPT parameter");
      seen_orcpt = true;
      auto o = smtp::parse_orcpt(*p.value);
      if (!o) return error(501, "", o.error().message);
      // Stored (and passed on by delivery) in the one form every DSN-capable next hop
      // accepts, whichever of the equivalent forms the client used (dsn_params.hpp).
      raw.push_back("ORCPT=" + smtp::format_orcpt(*o));
      continue;
    } else {
      return error(555, "5.5.4", "Unsupported RCPT parameter " + p.keyword);
    }
    raw.push_back(p.raw);
  }
  if (env_.recipients.size() >= settings_->limits.max_recipients) {
    // RFC 5321 §4.5.3.1.10: a 452 here tells the client to send the rest in another
    // transaction; it is not the client's fault, so not counted as an error.
    return emit(452, "4.5.3", "Error: too many recipients");
  }
  // An authenticated client relays like one in relay.networks (RFC 4954 §6).
  const RcptVerdict v = settings_->policy.check(path->address, client_.relay || authenticated_);
  if (!v.accept) return error(v.code, v.enhanced, v.text);
  const std::string given = path->address.mailbox();
  bool duplicate = false;
  for (const auto& r : env_.recipients) duplicate |= (r.address == v.deliver_to);
  if (!duplicate) {
    queue::Recipient r;
    r.address = v.deliver_to;
    if (given != v.deliver_to) r.original = given;
    r.params = std::move(raw);
    env_.recipients.push_back(std::move(r));
  }
  state_ = State::Rcpt;
  emit(250, "2.1.5", "Ok");
}

// The envelope is complete: the message starts at the queue (DATA, or the first BDAT).
void Session::begin_message() {
  env_.arrival_us = host_.now_us();
  env_.client_address = client_.address.str();
  env_.client_port = client_.port;
  env_.client_helo = helo_;
  env_.client_relay = client_.relay || authenticated_;  // one of our own clients
  // RFC 3848 / RFC 6531 §3.7.4.1: an S for TLS, then an A for SMTP AUTH.
  env_.protocol = smtputf8_ ? "UTF8SMTP" : esmtp_ ? "ESMTP" : "SMTP";
  if (tls_ && esmtp_) env_.protocol += "S";
  if (authenticated_) env_.protocol += "A";
  queue_id_ = host_.begin_message(env_);
  env_.id = queue_id_;
}

void Session::cmd_data(const smtp::Command& c) {
  if (!c.arg.empty()) return error(501, "5.5.4", "Syntax: DATA");
  if (state_ == State::Mail) return error(554, "5.5.1", "Error: no valid recipients");
  begin_message();
  decoder_.emplace(smtp::DataDecoder::Options{
      settings_->limits.bare_newlines == config::BareNewlinePolicy::Normalize,
      settings_->limits.max_line_length});
  state_ = State::Data;
  emit(354, "", "End data with <CR><LF>.<CR><LF>");
}

namespace {
// "BDAT" SP chunk-size [SP "LAST"] (RFC 3030 §2): the size as 1 to 19 digits.
std::optional<std::pair<uint64_t, bool>> parse_bdat(std::string_view arg) {
  const size_t sp = arg.find(' ');
  const std::string_view num = arg.substr(0, sp);
  if (num.empty() || num.size() > 19 || num.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  uint64_t n = 0;
  for (char d : num) n = n * 10 + uint64_t(d - '0');
  if (sp == std::string_view::npos) return std::pair{n, false};
  if (!iequals(trim(arg.substr(sp + 1)), "LAST")) return std::nullopt;
  return std::pair{n, true};
}
}  // namespace

void Session::cmd_bdat(const smtp::Command& c) {
  const auto parsed = parse_bdat(c.arg);
  // Without a size there is no knowing where the chunk ends, and its octets must never be
  // read as commands: the only safe answer is to close.
  if (!parsed) return close_with(501, "5.5.4", "Syntax: BDAT size [LAST]; closing");
  const auto [size, last] = *parsed;
  const uint64_t max = settings_->limits.max_message_size;
  if (size > max - std::min(content_size_, max)) {
    // Refused before its octets arrive: they are read and discarded (RFC 3030 §2), and the
    // transaction is over (the message dropped), so later BDATs get 503.
    skip_octets_ = size;
    reset_transaction();
    return error(552, "5.3.4", "Message size exceeds fixed maximum message size");
  }
  if (state_ == State::Rcpt) {  // the first chunk starts the message
    begin_message();
    decoder_.emplace(smtp::DataDecoder::Options{
        settings_->limits.bare_newlines == config::BareNewlinePolicy::Normalize,
        settings_->limits.max_line_length, false});
  }
  chunk_size_ = chunk_left_ = size;
  chunk_last_ = last;
  state_ = State::BdatChunk;
  if (size == 0) end_chunk();
}

// BDAT where it is not allowed (no transaction, or no recipient yet): 503, and the chunk's
// octets are skipped so they are never taken for commands (RFC 3030 §2 on pipelined chunks).
void Session::skip_bdat(const smtp::Command& c) {
  const auto parsed = parse_bdat(c.arg);
  if (!parsed) return close_with(501, "5.5.4", "Syntax: BDAT size [LAST]; closing");
  skip_octets_ = parsed->first;
  error(503, "5.5.1", state_ == State::Mail ? "Error: need RCPT command" : "Error: need MAIL command");
}

void Session::feed_chunk() {
  const uint64_t n = std::min<uint64_t>(chunk_left_, in_.size() - in_pos_);
  content_.clear();
  const auto step = decoder_->feed(std::string_view(in_).substr(in_pos_, n), content_);
  in_pos_ += step.consumed;  // all of it: without dot stuffing the decoder never stops early
  chunk_left_ -= step.consumed;
  take_content();
  if (chunk_left_ == 0) end_chunk();
}

// The chunk is complete: 250, or the refusal its content earned (the transaction ends), or
// for the LAST chunk the same end-of-message checks and commit as DATA.
void Session::end_chunk() {
  if (chunk_last_) {
    content_.clear();
    decoder_->finish(content_);
    take_content();
    return finish_data();
  }
  if (refuse_content(false)) return;
  state_ = State::Bdat;
  emit(250, "2.0.0", "Ok: " + std::to_string(chunk_size_) + " octets received");
}

void Session::feed_data() {
  content_.clear();
  const auto step = decoder_->feed(std::string_view(in_).substr(in_pos_), content_);
  in_pos_ += step.consumed;
  take_content();
  if (step.done) finish_data();
}

// Decoded content (in content_) goes to the header scan or the spool, within the size limit.
void Session::take_content() {
  content_size_ += content_.size();
  if (!too_big_ && content_size_ > settings_->limits.max_message_size) {
    // Keep reading to the real end of data, then answer (never at a false terminator).
    too_big_ = true;
    header_buf_.clear();
    host_.abort_message();
  }
  if (!too_big_) {
    if (!headers_done_) {
      header_buf_ += content_;
      // Incremental: each read's bytes are looked at once, however the header arrives.
      const size_t hl = header_end_.find(header_buf_);
      if (hl != std::string::npos || header_buf_.size() > limits::kMaxHeaderScan) flush_headers();
    } else if (!content_.empty()) {
      host_.message_data(content_);
    }
  }
}

// The header section is complete (or too long to hold): count Received:, add tern's own
// headers in front, and hand everything collected so far to the spool.
void Session::flush_headers() {
  headers_done_ = true;
  const size_t hl = smtp::header_block_length(header_buf_);
  const auto summary =
      smtp::scan_headers(std::string_view(header_buf_).substr(0, std::min(hl, header_buf_.size())));
  received_count_ = summary.received;
  std::string prelude = received_header();
  // Submission-style fixes only for our own clients (RFC 6409 §8); relayed mail is untouched.
  if (env_.client_relay) {
    if (!summary.has_message_id) prelude += "Message-ID: <" + queue_id_ + "@" + settings_->hostname + ">\r\n";
    if (!summary.has_date) prelude += "Date: " + rfc5322_date(env_.arrival_us) + "\r\n";
  }
  host_.message_data(prelude);
  if (!header_buf_.empty()) host_.message_data(header_buf_);
  header_buf_.clear();
}

std::string Session::received_header() const {
  // RFC 5321 §4.4 trace information; the client's address as an address literal
  // (§4.1.3: "[IPv6:...]" for IPv6).
  const std::string literal = (client_.address.v6 ? "[IPv6:" : "[") + env_.client_address + "]";
  std::string h = "Received: from " + helo_ + " (" + literal + ")\r\n";
  if (tls_)
    h += "\t(using " + tls_->version + " with cipher " + tls_->cipher + " (" + std::to_string(tls_->bits) +
         " bits))\r\n";
  // The authenticated name stays private unless auth.show_user says otherwise. It is a name
  // from the users file (no spaces or controls), so it cannot break the header.
  if (authenticated_ && settings_->show_user) h += "\t(authenticated user " + auth_user_ + ")\r\n";
  h += "\tby " + settings_->hostname + " (tern) with " + env_.protocol + " id " + queue_id_;
  if (env_.recipients.size() == 1) h += "\r\n\tfor <" + env_.recipients.front().address + ">";
  h += "; " + rfc5322_date(env_.arrival_us) + "\r\n";
  return h;
}

// Refuses the message if its content so far breaks a rule: the transaction ends (the
// message is dropped at the queue) and the client gets the reply. `at_end`: the whole
// message is in, so the header-based checks apply too.
bool Session::refuse_content(bool at_end) {
  const auto& lim = settings_->limits;
  const char* refusal = nullptr;
  int code = 0;
  const char* enh = "";
  if (decoder_->saw_bare_newline() && lim.bare_newlines == config::BareNewlinePolicy::Reject) {
    code = 550, enh = "5.6.0",
    refusal = "Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 2.3.8)";
  } else if (too_big_) {
    code = 552, enh = "5.3.4", refusal = "Message size exceeds fixed maximum message size";
  } else if (decoder_->saw_long_line() && lim.long_lines == config::LongLinePolicy::Reject) {
    code = 550, enh = "5.6.0", refusal = "Message has a line longer than the limit (RFC 5321 4.5.3.1.6)";
  } else if (at_end && received_count_ > lim.max_received_headers) {
    code = 554, enh = "5.4.6", refusal = "Too many Received: headers, mail loop suspected";
  }
  if (!refusal) return false;
  if (!too_big_) host_.abort_message();
  state_ = State::Greeted;
  reset_transaction();
  error(code, enh, refusal);
  if (draining_ && state_ != State::Closed) close_with(421, "4.3.2", "Service shutting down");
  return true;
}

void Session::finish_data() {
  if (!too_big_ && !headers_done_) flush_headers();
  if (refuse_content(true)) return;
  state_ = State::WaitCommit;
  host_.commit_message();
}

void Session::on_commit(CommitOutcome outcome) {
  if (state_ != State::WaitCommit) return;
  state_ = State::Greeted;
  switch (outcome) {
    case CommitOutcome::Committed:
      ++accepted_;
      emit(250, "2.0.0", "Ok: queued as " + queue_id_);
      break;
    case CommitOutcome::NoSpace:
      emit(452, "4.3.1", "Insufficient system storage");
      break;
    case CommitOutcome::IoError:
      emit(451, "4.3.0", "Error: queue file write error");
      break;
  }
  reset_transaction();
  if (draining_) return close_with(421, "4.3.2", "Service shutting down");
  pump();  // commands pipelined behind the data
}

void Session::on_timeout() {
  if (state_ == State::Closed) return;
  close_with(421, "4.4.2", "Error: timeout exceeded");
}

void Session::on_shutdown() {
  draining_ = true;
  if (state_ == State::Ready || state_ == State::Greeted || state_ == State::Auth)
    close_with(421, "4.3.2", "Service shutting down");
}

void Session::cmd_rset(const smtp::Command&) {
  reset_transaction();
  emit(250, "2.0.0", "Ok");
  if (draining_) close_with(421, "4.3.2", "Service shutting down");
}

void Session::cmd_noop(const smtp::Command&) { emit(250, "2.0.0", "Ok"); }

void Session::cmd_quit(const smtp::Command&) {
  emit(221, "2.0.0", "Bye");
  state_ = State::Closed;
}

void Session::cmd_vrfy(const smtp::Command& c) {
  if (c.arg.empty()) return error(501, "5.5.4", "Syntax: VRFY address");
  // RFC 5321 §3.5.3: 252 rather than revealing anything.
  emit(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
}

// An HTTP or proxy request (a browser or proxy client tricked into talking to port 25): one
// error and the connection closes at once, so none of the following lines (headers, a
// request body holding SMTP commands) is ever interpreted. Not counted as a client typo.
void Session::cmd_non_smtp(const smtp::Command&) {
  host_.log_event("reject: not an SMTP client; command=" + log_safe(current_line_.substr(0, 200)));
  host_.count_reject(554, "5.7.0");
  close_with(554, "5.7.0", "Error: this is an SMTP server, not HTTP or a proxy; closing");
}

void Session::cmd_help(const smtp::Command&) {
  std::string text = "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP";
  if (starttls_offered()) text += " STARTTLS";
  if (settings_->auth_offered && tls_active()) text += " AUTH";
  emit(214, "2.0.0", text);
}

// ---- SMTP AUTH (RFC 4954) ---------------------------------------------------------------

void Session::cmd_auth(const smtp::Command& c) {
  if (!settings_->auth_offered) return error(502, "5.5.1", "Error: command not implemented");
  // RFC 4954 §4 and RFC 5248: 538 when the mechanism needs an encrypted channel first.
  if (!tls_active()) return error(538, "5.7.11", "Encryption required for requested authentication mechanism");
  if (state_ == State::Ready || !esmtp_) return error(503, "5.5.1", "Error: send EHLO first");
  // RFC 4954 §4: "The AUTH command is not permitted during a mail transaction."
  if (state_ != State::Greeted) return error(503, "5.5.1", "Error: AUTH not allowed during a mail transaction");
  if (authenticated_) return error(503, "5.5.1", "Error: already authenticated");
  sasl_.emplace();
  auth_step(sasl_->begin(c.arg));
}

void Session::auth_line(std::string_view line) {
  if (!sasl_) return abort_auth();
  auth_step(sasl_->respond(line));
}

void Session::abort_auth() {
  if (state_ != State::Auth) return;
  sasl_.reset();
  state_ = State::Greeted;
}

void Session::auth_step(smtp::sasl::Step step) {
  using Kind = smtp::sasl::Step::Kind;
  using F = smtp::sasl::Failure;
  switch (step.kind) {
    case Kind::Challenge:
      state_ = State::Auth;
      out_ += "334 " + step.challenge + "\r\n";
      return;
    case Kind::Failed:
      sasl_.reset();
      state_ = State::Greeted;
      switch (step.failure) {
        case F::UnknownMechanism: return error(504, "5.5.4", "Unrecognized authentication type");
        case F::Cancelled: return error(501, "5.7.0", "Authentication cancelled");
        case F::BadBase64: return error(501, "5.5.2", "Cannot decode response");
        case F::Malformed: return error(501, "5.5.2", "Malformed authentication exchange");
        case F::Syntax: return error(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
      }
      return;
    case Kind::Done:
      break;
  }
  sasl_.reset();
  const bool taken = host_.verify_credentials(step.credentials);
  pending_user_ = std::move(step.credentials.user);
  std::fill(step.credentials.password.begin(), step.credentials.password.end(), '\0');
  if (!taken) {
    state_ = State::Greeted;
    host_.log_event("auth busy: no verifier free; user=" + log_safe(pending_user_));
    return emit(454, "4.7.0", "Temporary authentication failure, try again later");
  }
  state_ = State::WaitAuth;
}

void Session::on_auth_result(AuthOutcome outcome) {
  if (state_ != State::WaitAuth) return;
  state_ = State::Greeted;
  const std::string user = std::exchange(pending_user_, {});
  switch (outcome) {
    case AuthOutcome::Accepted:
      authenticated_ = true;
      auth_user_ = user;
      host_.log_event("auth ok: user=" + log_safe(user));
      emit(235, "2.7.0", "Authentication successful");
      break;
    case AuthOutcome::TempFail:
      host_.log_event("auth temporary failure: user=" + log_safe(user));
      emit(454, "4.7.0", "Temporary authentication failure, try again later");
      break;
    case AuthOutcome::Rejected:
      // One line per failure with the client's address (added by the glue) and the name:
      // what fail2ban-style tools match. Never the password.
      host_.log_event("auth failed: user=" + log_safe(user));
      host_.count_reject(535, "5.7.8");  // ternctl stats: failed logins at a glance
      emit(535, "5.7.8", "Authentication credentials invalid");
      if (++auth_failures_ >= limits::kMaxAuthFailures)
        return close_with(421, "4.7.0", "Error: too many failed authentication attempts");
      break;
  }
  if (draining_) return close_with(421, "4.3.2", "Service shutting down");
  pump();  // anything the client pipelined behind its credentials
}

}  // namespace tern::server
