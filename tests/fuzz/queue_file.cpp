// Fuzz target: the queue file codec (header and status records) must reject, never crash.
#include <string_view>

#include "queue/codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto p = tern::queue::parse_header(in);
  if (p) {
    const size_t end = p->header_length + size_t(std::min<uint64_t>(p->data_size, in.size()));
    if (end <= in.size()) (void)tern::queue::apply_status_records(p->envelope, in.substr(end));
    // What parsed must encode and parse back to the same recipients.
    auto again = tern::queue::parse_header(tern::queue::encode_header(p->envelope, p->data_size));
    if (!again || again->envelope.recipients.size() != p->envelope.recipients.size()) __builtin_trap();
  }
  return 0;
}
