#!/usr/bin/env python3
"""Measurement helpers for bench/run.sh. Standard library only; loopback only.

  load  --port P --sessions S --count N --size B --pids PID[,PID..]
        runs Postfix's smtp-source against 127.0.0.1:P and prints the acceptance rate and
        the peak resident memory of the given process trees while it ran.
  idle  --port P --conns C --pids PID[,PID..]
        opens C connections that each wait after the greeting; prints how many were
        greeted, the memory before and with them open.
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
    a = p.parse_args()
    {"load": load, "idle": idle}[a.cmd](a)


if __name__ == "__main__":
    main()
