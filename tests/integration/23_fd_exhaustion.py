#!/usr/bin/python3
"""Running out of file descriptors is not silent (issue 8 item 17). ternd runs under
`ulimit -n 64`: it warns at start that limits.max_connections + delivery.max_in_flight cannot
fit, and when more clients connect than it has descriptors for, it logs the failed accepts
(rate-limited: one line per 10 s with a count, not one per failure). Once the clients leave,
it serves again."""
import os
import re
import socket
import time

import harness as h

FD_LIMIT = 64
CLIENTS = 120


def scenario(ctx):
    wrapper = ctx.path("ternd-ulimit.sh")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nulimit -n {FD_LIMIT} || exit 99\nexec {h.TERND} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    h.TERND = wrapper  # Tern.start runs h.TERND
    t = ctx.tern(limits={"max_connections": 1000, "max_connections_per_client": 1000})

    h.step(f"start under ulimit -n {FD_LIMIT}")
    t.start()
    log = t.log()
    m = re.search(r"open-files=(\d+)", log)
    h.check(m is not None and int(m.group(1)) == FD_LIMIT, "ternd reports the open-files limit",
            t.log_tail(5))
    h.check("open-files limit 64 is below what the limits need" in log,
            "a warning at start says the connection limits cannot fit", t.log_tail(5))

    h.step(f"{CLIENTS} clients connect at once")
    t0 = time.monotonic()
    socks = []
    for _ in range(CLIENTS):
        try:
            socks.append(socket.create_connection(("127.0.0.1", t.port), timeout=5))
        except OSError as e:
            print(f"  info connect failed: {e}")
            break
    t.wait_log("cannot accept connections", timeout=20)
    time.sleep(1)  # let more accept failures happen while the clients stay connected
    elapsed = time.monotonic() - t0
    lines = [l for l in t.log().splitlines() if "cannot accept connections" in l]
    print(f"  info {len(lines)} accept-failure line(s) in {elapsed:.1f}s: {lines[0]}")
    h.check("Too many open files" in lines[0], "the line names the error (EMFILE)", lines[0])
    h.check(len(lines) <= 2 + int(elapsed / 10), "accept failures are rate-limited",
            f"{len(lines)} lines in {elapsed:.1f}s")

    h.step("the clients leave; ternd serves again")
    for s in socks:
        s.close()
    deadline = time.monotonic() + 20
    for _ in range(1000):
        try:
            with t.session() as c:
                c.expect("QUIT", 221)
            break
        except (h.Failure, OSError) as e:
            if time.monotonic() > deadline:
                h.fail(f"ternd does not serve again after the clients left: {e}")
            time.sleep(0.2)
    h.check(t.running(), "ternd is still running")
    t.stop()


h.main(scenario)
