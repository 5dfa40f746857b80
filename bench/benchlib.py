#!/usr/bin/env python3
"""Measurement helpers for bench/run.sh. Standard library only; loopback only.

  load  --port P --sessions S --count N --size B --pids PID[,PID..]
        runs Postfix's smtp-source against 127.0.0.1:P and prints the acceptance rate and
        the peak resident memory of the given process trees while it ran.
  idle  --port P --conns C --pids PID[,PID..]
        opens C connections that each wait after the greeting; prints how many were
        greeted, the memory before and with them open.
  e2e   --port P --sessions S --count N --size B --sink-file F
        sends N messages and times until the sink (Postfix's smtp-sink -c, writing its
        counters to F) has received them all.
  latency --port P --count N --sink-file F
        one message at a time on an idle MTA: time from sending the final "." to the sink
        counting the message; prints the median and 90th percentile.
  settle --sink-file F
        waits until the sink's counter has not moved for 2 s (the MTA's queue drained).
Every figure is one "key value" line.
"""
import argparse
import os
import socket
import subprocess
import sys
import threading
import time


def kids():
    table = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
                parent = int(st[st.rindex(")") + 2:].split()[1])
                table.setdefault(parent, []).append(int(d))
            except (OSError, ValueError):
                continue
    return table


def rss_kb(roots):
    """Memory of the process trees under `roots`, in KiB: the proportional set size (PSS),
    so pages that Postfix's many processes share are counted once, not once per process."""
    table, total, todo = kids(), 0, list(roots)
    while todo:
        pid = todo.pop()
        todo.extend(table.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class PeakSampler(threading.Thread):
    def __init__(self, roots):
        super().__init__(daemon=True)
        self.roots, self.peak, self.stop = roots, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kb(self.roots))
            self.stop.wait(0.05)


def load(a):
    roots = [int(p) for p in a.pids.split(",")]
    sampler = PeakSampler(roots)
    sampler.start()
    cmd = ["smtp-source", "-s", str(a.sessions), "-m", str(a.count), "-l", str(a.size),
           "-f", "bench@example.net", "-t", "sink@example.org", f"127.0.0.1:{a.port}"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    elapsed = time.monotonic() - t0
    sampler.stop.set()
    sampler.join()
    if r.returncode != 0:
        print(f"# smtp-source failed: {r.stderr.strip()[:300]}", file=sys.stderr)
        sys.exit(1)
    print(f"accept_s{a.sessions}_msgs_per_s {a.count / elapsed:.1f}")
    print(f"accept_s{a.sessions}_seconds {elapsed:.2f}")
    print(f"peak_pss_s{a.sessions}_kib {sampler.peak}")


def idle(a):
    roots = [int(p) for p in a.pids.split(",")]
    before = rss_kb(roots)
    socks, greeted = [], 0
    deadline = time.monotonic() + a.limit
    try:
        for _ in range(a.conns):
            if time.monotonic() > deadline:
                break
            s = socket.socket()
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", a.port))
            except OSError:
                s.close()
                break
            socks.append(s)
        for s in socks:
            if time.monotonic() > deadline:
                break
            try:
                if s.recv(512).startswith(b"220"):
                    greeted += 1
            except OSError:
                pass
        time.sleep(1)
        after = rss_kb(roots)
    finally:
        for s in socks:
            s.close()
    print(f"idle_conns_requested {a.conns}")
    print(f"idle_conns_greeted {greeted}")
    print(f"idle_pss_before_kib {before}")
    print(f"idle_pss_with_conns_kib {after}")
    if greeted:
        print(f"idle_kib_per_conn {(after - before) / greeted:.2f}")


def sink_count(path):
    """The last "mesg=N" counter smtp-sink -c wrote (it rewrites one line with CRs)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256))
            tail = f.read().decode("ascii", "replace")
    except OSError:
        return 0
    marks = [m for m in tail.replace("\r", "\n").split("\n") if "mesg=" in m]
    if not marks:
        return 0
    try:
        return int(marks[-1].rsplit("mesg=", 1)[1].split()[0])
    except (ValueError, IndexError):
        return 0


def settle(a):
    prev, stable = -1, 0
    for _ in range(600):  # at most 5 minutes
        cur = sink_count(a.sink_file)
        stable = stable + 1 if cur == prev else 0
        if stable >= 4:
            return
        prev = cur
        time.sleep(0.5)
    print("# warning: sink counter never settled", file=sys.stderr)


def e2e(a):
    start = sink_count(a.sink_file)
    cmd = ["smtp-source", "-s", str(a.sessions), "-m", str(a.count), "-l", str(a.size),
           "-f", "bench@example.net", "-t", "sink@example.org", f"127.0.0.1:{a.port}"]
    t0 = time.monotonic()
    subprocess.run(cmd, capture_output=True, timeout=a.timeout, check=True)
    deadline = t0 + a.timeout
    while sink_count(a.sink_file) < start + a.count and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    got = sink_count(a.sink_file) - start
    print(f"e2e_s{a.sessions}_msgs_per_s {got / elapsed:.1f}")
    print(f"e2e_s{a.sessions}_delivered {got}")


def latency(a):
    body = b"Subject: latency probe\r\n\r\n" + b"x" * 900 + b"\r\n"
    samples = []
    for _ in range(a.count):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        # Without NODELAY the final "." waits behind Nagle for the body's ACK (a delayed
        # ACK: ~40 ms), which would measure the kernel instead of the MTA.
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")

        def reply():
            while True:
                line = f.readline()
                if not line or line[3:4] != b"-":
                    return line

        reply()
        for cmd in (b"EHLO bench.example", b"MAIL FROM:<bench@example.net>",
                    b"RCPT TO:<sink@example.org>", b"DATA"):
            s.sendall(cmd + b"\r\n")
            reply()
        s.sendall(body)
        before = sink_count(a.sink_file)
        t0 = time.monotonic()
        s.sendall(b".\r\n")
        if not reply().startswith(b"250"):
            print("# latency probe not accepted", file=sys.stderr)
            sys.exit(1)
        while sink_count(a.sink_file) <= before and time.monotonic() - t0 < 10:
            time.sleep(0.0005)
        samples.append((time.monotonic() - t0) * 1000)
        s.sendall(b"QUIT\r\n")
        s.close()
        time.sleep(0.05)
    samples.sort()
    print(f"latency_ms_median {samples[len(samples) // 2]:.2f}")
    print(f"latency_ms_p90 {samples[int(len(samples) * 0.9)]:.2f}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    l = sub.add_parser("load")
    l.add_argument("--port", type=int, required=True)
    l.add_argument("--sessions", type=int, required=True)
    l.add_argument("--count", type=int, required=True)
    l.add_argument("--size", type=int, default=1024)
    l.add_argument("--pids", required=True)
    l.add_argument("--timeout", type=int, default=600)
    i = sub.add_parser("idle")
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--conns", type=int, required=True)
    i.add_argument("--pids", required=True)
    i.add_argument("--limit", type=int, default=60)
    e = sub.add_parser("e2e")
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--sessions", type=int, required=True)
    e.add_argument("--count", type=int, required=True)
    e.add_argument("--size", type=int, default=1024)
    e.add_argument("--sink-file", required=True)
    e.add_argument("--timeout", type=int, default=600)
    t = sub.add_parser("latency")
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--count", type=int, default=50)
    t.add_argument("--sink-file", required=True)
    st = sub.add_parser("settle")
    st.add_argument("--sink-file", required=True)
    a = p.parse_args()
    {"load": load, "idle": idle, "e2e": e2e, "latency": latency, "settle": settle}[a.cmd](a)


if __name__ == "__main__":
    main()
