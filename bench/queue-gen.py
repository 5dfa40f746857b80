#!/usr/bin/python3
"""Writes N committed messages into QUEUE_DIR/msg/ in the documented format (queue-format.md,
version 2), for the startup benchmark (bench/recover.sh). Each message has RCPTS recipients
at partner.example and a body of SIZE bytes; ids encode distinct arrival times an hour ago,
so they sort oldest first like real ones. Some recipients already have a status record, as
in a queue that has seen delivery attempts.

usage: bench/queue-gen.py QUEUE_DIR N [RCPTS] [SIZE]"""
import os
import sys
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def encode_id(micros):
    out = []
    for _ in range(11):
        out.append(CROCKFORD[micros & 31])
        micros >>= 5
    return "".join(reversed(out))


def write_message(msg_dir, arrival, sender, rcpts, body, trailer=b"", dir_fd=None):
    """One committed message file in msg_dir, named by the id of `arrival` (microseconds);
    returns the id. Also used by the integration scenarios that need a queue written before
    start-up."""
    qid = encode_id(arrival)
    head = (f"TERN-QUEUE 2\nid {qid}\narrival {arrival}\nclient-address 127.0.0.1\n"
            f"client-port 40000\nclient-helo client.example\nclient-relay yes\nprotocol ESMTP\n"
            f"sender <{sender}>\nmail-param BODY=8BITMIME\n" +
            "".join(f"rcpt <{r}>\n" for r in rcpts) +
            f"data-size {len(body):020d}\ndata\n").encode()
    fd = os.open(qid if dir_fd is not None else os.path.join(msg_dir, qid),
                 os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640, dir_fd=dir_fd)
    os.write(fd, head + body + trailer)
    os.close(fd)
    return qid


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    qdir, n = sys.argv[1], int(sys.argv[2])
    rcpts = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 1024
    for d in ("", "msg", "tmp", "corrupt"):
        os.makedirs(os.path.join(qdir, d), mode=0o750, exist_ok=True)
        os.chmod(os.path.join(qdir, d), 0o750)
    msg = os.path.join(qdir, "msg")
    dfd = os.open(msg, os.O_RDONLY | os.O_DIRECTORY)
    line = b"x" * 76 + b"\r\n"
    body = (b"Subject: queue-gen\r\n\r\n" + line * (size // len(line) + 1))[:max(size - 2, 0)] + b"\r\n"
    rcpt_list = [f"user{i}@partner.example" for i in range(rcpts)]
    start = int((time.time() - 3600) * 1e6)
    for i in range(n):
        arrival = start + i
        trailer = b""
        if i % 4 == 0:  # a quarter have been tried once already
            trailer = (f"status 0 deferred {arrival + 60000000} mx.partner.example[192.0.2.25]:25 "
                       f"451 4.3.0 try again later\n").encode()
        write_message(msg, arrival, f"sender{i % 1000}@client.example", rcpt_list, body, trailer,
                      dir_fd=dfd)
        if i and i % 100000 == 0:
            print(f"  {i} files", file=sys.stderr, flush=True)
    os.close(dfd)


if __name__ == "__main__":
    main()
