// SMTP replies as a client reads them (RFC 5321 §4.2): multi-line assembly, reply codes and
// enhanced status codes (RFC 3463). Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace tern::smtp {

struct Reply {
  int code = 0;
  std::string enhanced;            // "5.1.1", or empty when the server sent none
  std::vector<std::string> lines;  // text after "ddd-"/"ddd " on each line (enhanced code removed from the first)

  [[nodiscard]] bool positive() const noexcept { return code >= 200 && code < 400; }
  [[nodiscard]] bool temporary() const noexcept { return code >= 400 && code < 500; }
  [[nodiscard]] bool permanent() const noexcept { return code >= 500; }
  // One line for logs and queue records: "550 5.1.1 text / more text".
  [[nodiscard]] std::string str() const;
};

class ReplyParser {
 public:
  // Appends every reply completed by `bytes` to `out`. A malformed reply is an error (the
  // connection is not usable after it).
  Status feed(std::string_view bytes, std::vector<Reply>& out);
  // Bytes received and not yet part of a complete reply.
  [[nodiscard]] bool has_pending() const noexcept { return !buf_.empty() || in_reply_; }

 private:
  std::string buf_;
  Reply partial_;
  bool in_reply_ = false;
};

// The first enhanced status code (RFC 3463 "class.subject.detail") anywhere in a reply
// text such as "MAIL: 550 5.7.1 Sender refused"; empty if none.
std::string find_enhanced(std::string_view text);

// Splits "5.1.1 text" into the enhanced code (if its class matches `code`) and the rest.
std::pair<std::string, std::string_view> split_enhanced(int code, std::string_view text);

}  // namespace tern::smtp
