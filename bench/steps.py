#!/usr/bin/env python3
"""Per-step latency of the 1-session accept path, seen from the client.

  steps.py --port P [--count N] [--size B] [--helo]

Sends N messages one after the other, a new connection per message, the same dialogue as
smtp-source (HELO, MAIL, RCPT, DATA, body and "." in one write, QUIT) with TCP_NODELAY, and
times each step: connect+greeting, HELO, MAIL, RCPT, DATA, end of data ("." to 250), QUIT
(to 221), close. Prints the median and 90th percentile of each step in microseconds, and
the whole message. Run it against the MTA and against smtp-sink on the same machine: the
difference per step is what the MTA adds. Loopback only; bounded by --count and --limit.
"""
import argparse
import socket
import statistics
import sys
import time

STEPS = ["greeting", "helo", "mail", "rcpt", "data", "dot", "quit", "close", "total"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--limit", type=float, default=120, help="seconds at most")
    p.add_argument("--prefix", default="", help="prefix for every key")
    a = p.parse_args()
    body = (b"From: <bench@example.net>\r\nTo: <sink@example.org>\r\nSubject: step probe\r\n\r\n"
            + b"x" * max(0, a.size - 80) + b"\r\n.\r\n")
    times = {s: [] for s in STEPS}
    deadline = time.monotonic() + a.limit
    for _ in range(a.count):
        if time.monotonic() > deadline:
            break
        t = [time.perf_counter()]
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""

        def reply():
            nonlocal buf
            while True:
                nl = buf.find(b"\n")
                while nl >= 0:
                    line, buf = buf[:nl + 1], buf[nl + 1:]
                    if line[3:4] != b"-":
                        return line
                    nl = buf.find(b"\n")
                chunk = s.recv(4096)
                if not chunk:
                    return b""
                buf += chunk

        ok = reply().startswith(b"220")
        t.append(time.perf_counter())
        for cmd, want in ((b"HELO bench.example\r\n", b"250"),
                          (b"MAIL FROM:<bench@example.net>\r\n", b"250"),
                          (b"RCPT TO:<sink@example.org>\r\n", b"250"),
                          (b"DATA\r\n", b"354"), (body, b"250"), (b"QUIT\r\n", b"221")):
            s.sendall(cmd)
            ok = reply().startswith(want) and ok
            t.append(time.perf_counter())
        s.close()
        t.append(time.perf_counter())
        if not ok:
            print("# a reply was not the expected one", file=sys.stderr)
            sys.exit(1)
        for i, name in enumerate(STEPS[:-1]):
            times[name].append((t[i + 1] - t[i]) * 1e6)
        times["total"].append((t[-1] - t[0]) * 1e6)
    n = len(times["total"])
    print(f"{a.prefix}messages {n}")
    for name in STEPS:
        v = sorted(times[name])
        print(f"{a.prefix}{name}_us_median {statistics.median(v):.0f}")
        print(f"{a.prefix}{name}_us_p90 {v[int(len(v) * 0.9)]:.0f}")


if __name__ == "__main__":
    main()
