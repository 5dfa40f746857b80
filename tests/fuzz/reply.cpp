// Fuzz target: the SMTP client's reply parser and EHLO capability parsing.
#include <string_view>
#include <vector>

#include "delivery/client_session.hpp"
#include "smtp/reply_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  tern::smtp::ReplyParser p;
  std::vector<tern::smtp::Reply> out;
  (void)p.feed(in, out);
  for (const auto& r : out) {
    (void)r.str();
    (void)tern::delivery::parse_ehlo(r);
  }
  (void)tern::smtp::find_enhanced(in);
  // The whole client machine, fed the same bytes as a server's answers.
  tern::delivery::ClientSession s("fuzz.example");
  s.feed(in);
  return 0;
}
