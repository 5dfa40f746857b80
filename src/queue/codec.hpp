// The queue file codec: Envelope <-> the text records of queue-format.md. Pure, no I/O;
// queue-format.md is the binding grammar and this file must follow it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "queue/envelope.hpp"

namespace tern::queue {

// The first line names the format version. Version 2 is version 1 plus the extension rules
// (unknown optional records are skipped, unknown must-understand `!records` leave the file
// alone) and the operator records !held, !released, !deleted. Version 3 is version 2 written
// in place in msg/ and closed by an `end` record after the data: a version-3 file without
// one was never acknowledged. Versions 1 and 2 stay readable.
inline constexpr unsigned kFormatVersion = 3;
inline constexpr std::string_view kMagic = "TERN-QUEUE 3";
inline constexpr std::string_view kMagicPrefix = "TERN-QUEUE ";
// A record key starting with this is must-understand (queue-format.md, Format evolution).
inline constexpr char kMustUnderstand = '!';
inline constexpr size_t kDataSizeDigits = 20;

// The header: every envelope record, then `data-size` (fixed width, so it can be
// overwritten in place once the data has been streamed) and the `data` line.
// `history` (an imported message's state records from the exporting node: status,
// status-code, delay-warned, !held lines without their newline) is carried in the header as
// `!history` records, so that it is durable with the message in the same write.
std::string encode_header(const Envelope& env, uint64_t data_size, const std::vector<std::string>& history = {});
// Offset of the data-size digits inside a header produced by encode_header.
size_t data_size_offset(std::string_view header);
std::string format_data_size(uint64_t size);

// The closing record of a version-3 file, right after the data: `end CRC`, CRC-32C (8 hex
// digits, upper case) of the data bytes followed by the header bytes (data-size filled in).
inline constexpr size_t kEndRecordLength = 13;
std::string encode_end(uint32_t crc);
// The CRC of a closing record at the start of `trailer`; nullopt when there is none.
std::optional<uint32_t> parse_end(std::string_view trailer);
// A file whose header, data and closing record fit in this many bytes is made durable with
// one fdatasync (the closing record may reach the disk before the data, so startup checks
// its CRC); a larger one has its data fdatasync'd before the closing record is written,
// and startup trusts the record without reading the data.
inline constexpr uint64_t kCheckedFileLimit = 64 * 1024;

// A status record, appended after the data when a recipient's state changes. `relay` is
// the host that answered ("" when none did).
std::string encode_status(size_t rcpt_index, RcptState state, int64_t time_us,
                          std::string_view relay, std::string_view reply);
// The status code behind the last status record of a recipient (optional record: an older
// reader skips it), and whether its reply text came from the next hop or from tern.
std::string encode_status_code(size_t rcpt_index, std::string_view code, bool remote);
// The message-level record saying the delay warning has been queued.
std::string encode_delay_warned(int64_t time_us);
// Operator records (must-understand): hold, release, delete the message.
std::string encode_held(int64_t time_us);
std::string encode_released(int64_t time_us);
std::string encode_deleted(int64_t time_us);
std::string encode_exported(int64_t time_us);

struct ParsedHeader {
  Envelope envelope;
  size_t header_length = 0;  // offset of the first data byte
  uint64_t data_size = 0;
  unsigned version = 0;      // from the magic line
  // Set when the file needs a newer reader: a must-understand record this version does not
  // know, or a newer format version. The file must then be left alone (neither delivered
  // nor set aside). Only the magic line is read in the newer-version case.
  std::string unknown_must_understand;
  // The `!history` records of an imported message (the record lines, already applied to the
  // envelope), in order.
  std::vector<std::string> history;
};

// Parses the header from the first bytes of a queue file (`prefix` must contain the whole
// header: readers grow the prefix until it does, up to kMaxHeader).
Result<ParsedHeader> parse_header(std::string_view prefix);
// Far above any header tern writes (limits.max_recipients recipients of at most a few KiB).
inline constexpr size_t kMaxHeader = 64u << 20;

// Applies the records that follow the data (status, delay-warned, !held, !released,
// !deleted, !exported). A last record without its newline is a torn append (a crash mid-write) and is
// ignored; an unknown optional record is skipped; any other malformed record is an error. An
// unknown must-understand record stops reading: its key is stored in
// `*unknown_must_understand`, or without that pointer it is an error (ErrorKind::Perm).
Status apply_status_records(Envelope& env, std::string_view trailer,
                            std::string* unknown_must_understand = nullptr);

// One event of a message's life after arrival, read from the records after the data (for
// `ternctl show`): a recipient's state change, or an operator's or the notifier's record.
struct HistoryEvent {
  int64_t time_us = 0;
  std::string what;  // a recipient state ("deferred", ...), or "held", "released", "deleted", "exported", "delay-warned"
  long rcpt = -1;    // the recipient index of a state change
  std::string relay;
  std::string reply;
};
// Best effort: malformed or unknown records are skipped (the daemon's reader judges them).
std::vector<HistoryEvent> history_of(std::string_view trailer);

// Field escaping: bytes that would break the line format become %XX.
std::string escape_token(std::string_view s);  // also escapes space
std::string escape_text(std::string_view s);   // space kept (free text, last field)
Result<std::string> unescape(std::string_view s);

}  // namespace tern::queue
