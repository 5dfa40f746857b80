// Fuzz target: the AUTH exchange decoder (base64, the AUTH argument, PLAIN and LOGIN fields).
// The input is split at newlines: the first line is the AUTH argument, the rest responses.
#include <string>
#include <string_view>

#include "smtp/base64.hpp"
#include "smtp/sasl.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  namespace sasl = tern::smtp::sasl;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  // Decoding anything, and the round trip of whatever decodes.
  if (auto d = tern::smtp::base64_decode(in)) {
    if (tern::smtp::base64_encode(*d) != in) __builtin_trap();
    (void)sasl::parse_plain(*d);
  }
  (void)sasl::parse_plain(in);
  sasl::Exchange ex;
  size_t nl = in.find('\n');
  sasl::Step s = ex.begin(in.substr(0, nl));
  while (s.kind == sasl::Step::Kind::Challenge && nl != std::string_view::npos) {
    const size_t from = nl + 1;
    nl = in.find('\n', from);
    s = ex.respond(in.substr(from, nl == std::string_view::npos ? nl : nl - from));
  }
  if (s.kind == sasl::Step::Kind::Done) {
    // Whatever an exchange yields satisfies the RFC 4616 bounds.
    if (s.credentials.user.empty() || s.credentials.user.size() > sasl::kMaxField ||
        s.credentials.password.empty() || s.credentials.password.size() > sasl::kMaxField ||
        s.credentials.user.find('\0') != std::string::npos ||
        s.credentials.password.find('\0') != std::string::npos)
      __builtin_trap();
  }
  return 0;
}
