// Base64 (RFC 4648 §4) as SMTP AUTH uses it (RFC 4954 §4): encoding for what tern sends,
// strict decoding (no whitespace, correct padding) for what clients send. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tern::smtp {

std::string base64_encode(std::string_view in);
// nullopt on any character outside the alphabet, bad padding or a bad length.
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace tern::smtp
