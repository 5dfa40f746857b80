// Fixed protocol limits that are not configuration (the configurable ones live in config.hpp).
#pragma once

#include <cstddef>

namespace tern::limits {

// Longest command line accepted, CRLF included. RFC 5321 §4.5.3.1.4 says 512, but ESMTP
// parameters (SIZE, DSN's ORCPT/ENVID, AUTH) lengthen MAIL and RCPT (RFC 3461 §4).
inline constexpr size_t kMaxCommandLine = 4096;
// How much of a message's header section is buffered to look for Received:, Message-ID:
// and Date: before it is passed on unchanged.
inline constexpr size_t kMaxHeaderScan = 256 * 1024;
// Spool write chunk: content is handed to the thread pool in pieces of about this size.
inline constexpr size_t kSpoolChunk = 256 * 1024;

}  // namespace tern::limits

namespace tern::limits {

// Failed AUTH attempts on one connection before it is closed with 421 (each one already
// slowed down by the server's per-address delay).
inline constexpr unsigned kMaxAuthFailures = 3;
// Password verifications waiting for a free verifier, per verifier thread; past it AUTH
// gets 454 4.7.0 (an AUTH flood must not queue without bound).
inline constexpr size_t kVerifyQueuePerWorker = 8;

}  // namespace tern::limits
