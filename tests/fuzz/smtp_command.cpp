// Fuzz target: command lines, paths and ESMTP parameters (smtp/command, smtp/address).
#include <string_view>

#include "smtp/address.hpp"
#include "smtp/command.hpp"
#include "smtp/dsn_params.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const auto c = tern::smtp::parse_command(line);
  for (bool utf8 : {false, true}) {
    if (auto p = tern::smtp::parse_path(c.arg, true, true, utf8)) {
      (void)p->address.mailbox();
      (void)tern::smtp::parse_params(p->rest, utf8);
    }
  }
  (void)tern::smtp::parse_notify(line);
  if (auto o = tern::smtp::parse_orcpt(line)) {
    // What tern stores and passes on must parse back to the same type and address.
    auto again = tern::smtp::parse_orcpt(tern::smtp::format_orcpt(*o));
    if (!again || again->address != o->address) __builtin_trap();
    if (tern::smtp::format_orcpt(*again) != tern::smtp::format_orcpt(*o)) __builtin_trap();
  }
  (void)tern::smtp::parse_envid(line);
  if (auto d = tern::smtp::xtext_decode(line)) {
    // Round trip: what decodes must encode back to something that decodes the same.
    if (tern::smtp::xtext_decode(tern::smtp::xtext_encode(*d)).value() != *d) __builtin_trap();
  }
  return 0;
}
