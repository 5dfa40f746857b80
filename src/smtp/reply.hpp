// SMTP replies: formatting with enhanced status codes (RFC 5321 §4.2, RFC 3463, RFC 2034).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tern::smtp {

// "250 2.1.0 Ok\r\n". `text` may already start with an enhanced code ("5.1.1 ..."), in which
// case `enhanced` is left empty by the caller.
std::string reply(int code, std::string_view enhanced, std::string_view text);
// Multi-line reply: every line but the last uses "code-".
std::string reply_lines(int code, const std::vector<std::string>& lines);

}  // namespace tern::smtp
