// The submission socket's line protocol between tern-sendmail and ternd (pure: both ends
// format and parse here, no I/O).
//
// Client to ternd: lines ending in LF, each at most kMaxLine octets, then the message:
//   LIST                          a read-only queue listing (-bp, mailq); nothing else follows
//   FROM <addr> [RET=FULL|HDRS] [ENVID=xtext] [BODY=7BIT|8BITMIME]
//                                 optional (-f); "<>" is the null sender; without it the
//                                 sender is the caller's user@hostname
//   NAME text                     optional (-F): the full name for a From: ternd adds
//   TO <addr> [NOTIFY=...]        one line per recipient, at least one
//   DATA n                        then exactly n octets: the message, CRLF line ends
// An address without '@' is qualified with ternd's hostname (cron mails "USER").
// ternd answers with one line and closes:
//   OK <queue-id>                 committed: the same promise as SMTP's 250 after DATA
//   OK                            then the listing lines (for LIST)
//   ERR <code> <text>             <code> a sysexits value (65 data, 75 try later, 64 usage)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace tern::submit {

constexpr size_t kMaxLine = 2048;

struct RcptLine {
  std::string address;              // qualified local@domain
  std::vector<std::string> params;  // NOTIFY=...
};

struct Request {
  bool list = false;
  bool sender_given = false;
  std::string sender;                    // qualified; empty with sender_given = the null sender
  std::vector<std::string> mail_params;  // RET=, ENVID=, BODY=
  std::string full_name;
  std::vector<RcptLine> rcpts;
  uint64_t size = 0;                     // of the message that follows DATA
};

// A protocol error: the sysexits code the client exits with and a one-line reason.
struct Refusal {
  int code;
  std::string text;
};

// Reads the request lines; the message octets that follow DATA are the caller's business.
class RequestReader {
 public:
  RequestReader(std::string hostname, uint64_t max_size, uint32_t max_rcpts)
      : hostname_(std::move(hostname)), max_size_(max_size), max_rcpts_(max_rcpts) {}
  enum class State { More, Data, List, Refused };
  // Feeds bytes; on Data, `leftover()` holds the octets after the DATA line (message start).
  State feed(std::string_view bytes);
  [[nodiscard]] const Request& request() const noexcept { return req_; }
  [[nodiscard]] const Refusal& refusal() const noexcept { return refusal_; }
  std::string take_leftover() { return std::move(buf_); }

 private:
  State line(std::string_view l);
  State refuse(int code, std::string text);
  std::string hostname_;
  uint64_t max_size_;
  uint32_t max_rcpts_;
  std::string buf_;
  Request req_;
  Refusal refusal_{0, {}};
  State state_ = State::More;
};

// Client side: the request lines for a message of `size` octets (addresses as given on the
// command line or found in the headers; xtext coding of ENVID is done here).
struct Submission {
  bool sender_given = false;
  std::string sender;
  std::vector<std::string> mail_params;
  std::string full_name;
  std::vector<std::string> rcpts;
  std::string notify;  // "" = not given
  // Per recipient (parallel to rcpts, or empty): NOTIFY=/ORCPT= from an SMTP session (-bs);
  // when given they replace `notify`.
  std::vector<std::vector<std::string>> rcpt_params;
};
std::string format_request(const Submission& s, uint64_t size);

// Parses ternd's one-line answer: ok with the id, or the refusal.
struct Answer {
  bool ok = false;
  int code = 0;
  std::string text;  // queue id, or the reason
};
Answer parse_answer(std::string_view line);

}  // namespace tern::submit
