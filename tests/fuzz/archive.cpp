// Fuzz target: export archives (queue/archive.cpp) are untrusted input on the importing node.
// The input is tried as a whole archive (refused or read, never a crash) and as the queue file
// inside an entry whose checksum is right (what the checksum cannot catch: a hostile or
// broken exporter). What decodes must come out the same when written into the importing
// node's queue file and read back.
#include <string>
#include <string_view>

#include "queue/archive.hpp"
#include "queue/codec.hpp"
#include "queue/crc32c.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  using namespace tern::queue;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto whole = parse_archive(in); whole.ok())
    for (const auto& e : whole->entries)
      if (e.ok()) (void)decode_archive_entry(*e, 1);

  ArchiveEntry e;
  e.origin_host = "node-a.example";
  auto head = parse_header(in);
  e.origin_id = head.ok() ? head->envelope.id : "X";
  e.queue_file = std::string(in);
  const std::string archive = encode_archive_head({"node-a.example", 1}) + encode_archive_entry(e) + encode_archive_end(1);
  auto parsed = parse_archive(archive);
  if (!parsed.ok() || parsed->entries.size() != 1) __builtin_trap();  // a well-framed archive always reads
  if (!parsed->entries[0].ok()) return 0;                              // an origin id it will not take
  auto m = decode_archive_entry(*parsed->entries[0], 1);
  if (!m.ok()) return 0;
  Envelope fresh = m->env;
  fresh.id = "1K1NEWID0AB";
  const std::string header = encode_header(fresh, m->data.size(), m->history);
  const std::string file = header + m->data + encode_end(crc32c(crc32c(0, m->data), header));
  auto back = parse_header(file);
  if (!back.ok() || !back->unknown_must_understand.empty() || back->envelope.origin != fresh.origin ||
      back->envelope.held != fresh.held || back->envelope.arrival_us != fresh.arrival_us ||
      back->envelope.recipients.size() != fresh.recipients.size())
    __builtin_trap();
  for (size_t i = 0; i < fresh.recipients.size(); ++i) {
    const auto &x = back->envelope.recipients[i], &y = fresh.recipients[i];
    if (x.state != y.state || x.attempts != y.attempts || x.last_reply != y.last_reply || x.address != y.address)
      __builtin_trap();
  }
  return 0;
}
