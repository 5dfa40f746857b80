// The export archive codec (queue-format.md, "Export archives"): queued messages moved from
// one node to another by `ternctl export` and `ternctl import`. Pure, no I/O; the archive is
// untrusted input on the importing side, so every length and field is checked.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "queue/envelope.hpp"

namespace tern::queue {

inline constexpr std::string_view kArchiveMagic = "TERN-ARCHIVE 1";
// Longest line of the archive's own framing (head, frame and end lines).
inline constexpr size_t kMaxArchiveLine = 1024;
// Longest exporting host name and queue id accepted from an archive.
inline constexpr size_t kMaxOriginHost = 255;
inline constexpr size_t kMaxOriginId = 64;

// One message as exported: where it came from, whether an operator had held it, when its
// next attempt was due there, and its whole queue file (header, data, closing record and
// the status records, without the operator's !held/!released records).
struct ArchiveEntry {
  std::string origin_host;
  std::string origin_id;
  bool held = false;
  int64_t next_attempt_us = 0;  // 0: none was scheduled
  std::string queue_file;
};

struct ArchiveHead {
  std::string host;  // the exporting node
  int64_t created_us = 0;
};

// `message LENGTH CRC` (LENGTH bytes of entry follow, then "\n") or `end COUNT`.
struct ArchiveFrame {
  bool end = false;
  uint64_t length = 0;  // message: bytes of the entry
  uint32_t crc = 0;     // message: CRC-32C of those bytes
  uint64_t count = 0;   // end: the number of messages in the archive
};

std::string encode_archive_head(const ArchiveHead& head);
// The frame line, the entry and its terminating newline.
std::string encode_archive_entry(const ArchiveEntry& e);
std::string encode_archive_end(uint64_t count);

// The three head lines (magic, host, created), each with its "\n".
Result<ArchiveHead> parse_archive_head(std::string_view text);
// One frame line, without its "\n".
Result<ArchiveFrame> parse_archive_frame(std::string_view line);
// An entry's bytes (the CRC already checked by the caller).
Result<ArchiveEntry> parse_archive_entry(std::string_view body);

// A whole archive held in memory (tests, small archives): the head and, per message frame,
// the entry or why it is refused (a checksum that does not match). A damaged frame, a
// missing end line or bytes after it refuse the whole archive.
struct ParsedArchive {
  ArchiveHead head;
  std::vector<Result<ArchiveEntry>> entries;
};
Result<ParsedArchive> parse_archive(std::string_view all);

// Export side: the archive entry of one queue file (read whole). Checks that it parses, drops
// the operator's !held/!released records (the export holds the message itself; `held` says
// whether an operator had) and a torn last record. Refuses a file that is deleted, exported
// or needs a newer tern.
Result<ArchiveEntry> entry_from_queue_file(std::string_view file, std::string_view host, bool held,
                                           int64_t next_attempt_us);

// Import side: what an entry becomes in the new queue. `env` has the state of every
// recipient (attempts, last reply...), the arrival time, the DSN parameters, `held` and
// `origin` ("HOST ID") set; its id is still the exporting node's. `history` is the records
// to carry into the new file (status, status-code, delay-warned, and !held when held).
struct ImportedMessage {
  Envelope env;
  std::vector<std::string> history;
  std::string data;
};
// `now_us` stamps the carried !held record. Refuses (Perm) an entry whose queue file does not
// parse, whose closing record's checksum does not match, that needs a newer tern, or whose
// origin does not match the file.
Result<ImportedMessage> decode_archive_entry(const ArchiveEntry& e, int64_t now_us);

}  // namespace tern::queue
