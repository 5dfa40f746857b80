// Fuzz target: the queue file codec (header and status records) must reject, never crash,
// and whatever it accepts must survive a write and a read with EVERY field unchanged.
#include <string>
#include <string_view>

#include "queue/codec.hpp"

namespace {

using tern::queue::Envelope;

// The header fields (what encode_header writes) of two envelopes are equal.
bool same_header(const Envelope& a, const Envelope& b) {
  if (a.id != b.id || a.arrival_us != b.arrival_us || a.client_address != b.client_address ||
      a.client_port != b.client_port || a.client_helo != b.client_helo || a.client_relay != b.client_relay ||
      a.protocol != b.protocol || a.sender != b.sender || a.mail_params != b.mail_params ||
      a.notice_for != b.notice_for || a.notice_rcpts != b.notice_rcpts || a.origin != b.origin ||
      a.recipients.size() != b.recipients.size())
    return false;
  for (size_t i = 0; i < a.recipients.size(); ++i) {
    const auto &x = a.recipients[i], &y = b.recipients[i];
    if (x.address != y.address || x.original != y.original || x.params != y.params) return false;
  }
  return true;
}

// The state fields (what status and delay-warned records carry) are equal. `attempts` is the
// number of deferred records, which a re-encoding of the final state does not repeat.
bool same_state(const Envelope& a, const Envelope& b) {
  if (a.delay_warned_us != b.delay_warned_us || a.held != b.held || a.deleted != b.deleted ||
      a.recipients.size() != b.recipients.size())
    return false;
  for (size_t i = 0; i < a.recipients.size(); ++i) {
    const auto &x = a.recipients[i], &y = b.recipients[i];
    if (x.state != y.state || x.updated_us != y.updated_us || x.last_reply != y.last_reply ||
        x.last_relay != y.last_relay)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  using namespace tern::queue;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto p = parse_header(in);
  if (!p || !p->unknown_must_understand.empty()) return 0;  // not ours to read any further
  auto again = parse_header(encode_header(p->envelope, p->data_size));
  if (!again || !same_header(again->envelope, p->envelope) || again->data_size != p->data_size)
    __builtin_trap();
  const size_t end = p->header_length + size_t(std::min<uint64_t>(p->data_size, in.size()));
  if (end > in.size() || !apply_status_records(p->envelope, in.substr(end))) return 0;
  // The state read from the trailer, written as records and read again, is the same state.
  std::string trailer;
  for (size_t i = 0; i < p->envelope.recipients.size(); ++i) {
    const auto& r = p->envelope.recipients[i];
    trailer += encode_status(i, r.state, r.updated_us, r.last_relay, r.last_reply);
  }
  if (p->envelope.delay_warned_us) trailer += encode_delay_warned(p->envelope.delay_warned_us);
  if (p->envelope.held) trailer += encode_held(1);
  if (p->envelope.deleted) trailer += encode_deleted(1);
  if (!apply_status_records(again->envelope, trailer) || !same_state(again->envelope, p->envelope))
    __builtin_trap();
  return 0;
}
