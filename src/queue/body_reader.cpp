// Chunked reads of queue files on the thread pool.
#include "queue/body_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "smtp/header_section.hpp"

namespace tern::queue {

Result<ParsedHeader> read_header(int fd, uint64_t file_size, std::string& buf) {
  size_t want = size_t(std::min<uint64_t>(file_size, 64 * 1024));
  while (true) {
    buf.resize(want);
    ssize_t n = ::pread(fd, buf.data(), buf.size(), 0);
    if (n < 0) return Error::temp(std::string("read: ") + std::strerror(errno));
    buf.resize(size_t(n));
    auto parsed = parse_header(buf);
    if (parsed || uint64_t(n) >= file_size || want >= kMaxHeader) return parsed;
    want = size_t(std::min<uint64_t>(file_size, uint64_t(want) * 4));
  }
}

namespace {

struct Opened {
  int fd = -1;
  uint64_t offset = 0, size = 0;
  std::string error;
};

Opened open_data(const std::string& path) {
  Opened o;
  o.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (o.fd < 0) {
    o.error = "open " + path + ": " + std::strerror(errno);
    return o;
  }
  struct stat st {};
  if (::fstat(o.fd, &st) != 0) {
    o.error = std::string("fstat: ") + std::strerror(errno);
    return o;
  }
  std::string head;
  auto parsed = read_header(o.fd, uint64_t(st.st_size), head);
  if (!parsed) {
    o.error = parsed.error().message;
  } else if (uint64_t(st.st_size) < parsed->header_length + parsed->data_size) {
    o.error = "file shorter than its data-size says";
  } else {
    o.offset = parsed->header_length;
    o.size = parsed->data_size;
  }
  return o;
}

// pread until `len` bytes or an error.
std::string read_at(int fd, uint64_t off, size_t len, std::string& error) {
  std::string out(len, '\0');
  size_t got = 0;
  while (got < len) {
    ssize_t r = ::pread(fd, out.data() + got, len - got, off_t(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      error = r < 0 ? std::string("read: ") + std::strerror(errno) : "file shorter than data-size";
      break;
    }
    got += size_t(r);
  }
  out.resize(got);
  return out;
}

}  // namespace

BodyReader::~BodyReader() {
  if (fd_ >= 0) ::close(fd_);
}

void BodyReader::open(io::Loop& loop, std::string path,
                      std::function<void(Result<std::shared_ptr<BodyReader>>)> done) {
  auto o = std::make_shared<Opened>();
  loop.queue_work([o, path = std::move(path)] { *o = open_data(path); },
                  [&loop, o, done = std::move(done)] {
                    if (!o->error.empty()) {
                      if (o->fd >= 0) ::close(o->fd);
                      return done(Error::temp(o->error));
                    }
                    done(std::shared_ptr<BodyReader>(new BodyReader(loop, o->fd, o->offset, o->size)));
                  });
}

void BodyReader::next(size_t max, std::function<void(std::string&, bool)> transform,
                      std::function<void(Result<std::string>)> done) {
  struct Job {
    std::string data, error;
  };
  auto j = std::make_shared<Job>();
  const size_t len = size_t(std::min<uint64_t>(max, size_ - pos_));
  const bool last = pos_ + len >= size_;
  auto self = shared_from_this();
  loop_.queue_work(
      [self, j, len, last, transform = std::move(transform)] {
        j->data = read_at(self->fd_, self->offset_ + self->pos_, len, j->error);
        if (j->error.empty()) transform(j->data, last);
      },
      [self, j, len, last, done = std::move(done)] {
        if (!j->error.empty()) return done(Error::temp(j->error));
        self->pos_ += len;
        if (last) self->finished_ = true;
        done(std::move(j->data));
      });
}

void read_data_prefix(io::Loop& loop, std::string path, size_t max, bool headers_only,
                      std::function<void(Result<std::string>)> done) {
  auto j = std::make_shared<std::pair<std::string, std::string>>();  // data, error
  loop.queue_work(
      [j, path = std::move(path), max, headers_only] {
        Opened o = open_data(path);
        if (!o.error.empty()) {
          j->second = o.error;
        } else {
          // Headers are read in growing steps: most header sections are a few KiB.
          size_t want = headers_only ? std::min<size_t>(max, 16 * 1024) : max;
          while (true) {
            want = size_t(std::min<uint64_t>(want, o.size));
            j->first = read_at(o.fd, o.offset, want, j->second);
            if (!j->second.empty() || !headers_only) break;
            bool complete = false;
            const size_t end = smtp::header_section_length(j->first, complete);
            if (complete || want >= o.size || want >= max) {
              // Incomplete after the whole data: a message of header fields only, the
              // last one unterminated; it is returned whole.
              if (complete || want < o.size) j->first.resize(end);
              break;
            }
            want = std::min(max, want * 4);
          }
        }
        if (o.fd >= 0) ::close(o.fd);
      },
      [j, done = std::move(done)] {
        if (!j->second.empty()) return done(Error::temp(j->second));
        done(std::move(j->first));
      });
}

}  // namespace tern::queue
