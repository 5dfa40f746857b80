// Reading a committed message's data back in pieces, on the thread pool: delivery streams
// the body chunk by chunk (memory per delivery bounded by a chunk, not the message size),
// and notices that return only the headers read only the headers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/result.hpp"
#include "io/loop.hpp"
#include "queue/codec.hpp"

namespace tern::queue {

// Reads enough of a queue file to hold its whole header: the prefix grows until the
// "data" line is in it (headers of many long recipients can pass any fixed size). Blocking:
// thread pool or startup only.
Result<ParsedHeader> read_header(int fd, uint64_t file_size, std::string& buf);

class BodyReader : public std::enable_shared_from_this<BodyReader> {
 public:
  ~BodyReader();
  BodyReader(const BodyReader&) = delete;
  BodyReader& operator=(const BodyReader&) = delete;

  // Opens `msg_dir`/`id` and locates its data, on the thread pool; `done` on the loop.
  static void open(io::Loop& loop, std::string path,
                   std::function<void(Result<std::shared_ptr<BodyReader>>)> done);

  // Reads the next piece of the data (at most `max` bytes) and runs `transform` on it in
  // the pool (the dot encoder: no per-byte work on the loop). `done` gets the transformed
  // bytes; at the end of the data, `transform` still runs once on an empty piece, and
  // at_end() is true afterwards. One call at a time.
  void next(size_t max, std::function<void(std::string& piece, bool last)> transform,
            std::function<void(Result<std::string>)> done);

  [[nodiscard]] uint64_t size() const noexcept { return size_; }
  [[nodiscard]] bool at_end() const noexcept { return pos_ >= size_ && finished_; }

 private:
  BodyReader(io::Loop& loop, int fd, uint64_t offset, uint64_t size)
      : loop_(loop), fd_(fd), offset_(offset), size_(size) {}
  io::Loop& loop_;
  int fd_;
  uint64_t offset_;  // of the first data byte in the file
  uint64_t size_;
  uint64_t pos_ = 0;
  bool finished_ = false;
};

// The first bytes of a message's data, on the thread pool: with `headers_only`, up to the
// end of its header section (the blank line, or
// the leading header-field lines when there is none, smtp::header_section_length); never
// more than `max` bytes.
void read_data_prefix(io::Loop& loop, std::string path, size_t max, bool headers_only,
                      std::function<void(Result<std::string>)> done);

}  // namespace tern::queue
