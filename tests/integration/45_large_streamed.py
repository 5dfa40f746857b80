#!/usr/bin/python3
"""Streaming delivery: three 30 MB messages, queued while their MX is down, are then
delivered at once to a slow but live next hop (about 8 MB/s each). Each arrives byte for
byte (SHA-256 of what the sink un-stuffed = Received: header + original), and ternd's
resident memory while it delivers stays far below one message's size: the body is read
from the queue file in pieces, never held whole (the old code held ~3 copies each)."""
import hashlib
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SIZE = 30 * 1024 * 1024
COUNT = 3


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sanitized():
    out = subprocess.run(["ldd", h.TERND], capture_output=True, text=True).stdout
    return "libasan" in out


def big_message(n):
    line = (f"message {n} " + "x" * 60 + "\r\n").encode()
    head = (f"From: a@client.example\r\nTo: user@relay.example\r\nSubject: big {n}\r\n"
            f"Message-ID: <big.{n}@client.example>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\n").encode()
    body = bytearray(head)
    # Dot-leading lines on the way, so stuffing is exercised across piece boundaries.
    i = 0
    while len(body) < SIZE:
        body += b".dot line\r\n" if i % 997 == 0 else line
        i += 1
    return bytes(body)


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2"])
    _, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
    ])
    sink = sinks.add_sink(ctx, sinks.ScriptedSink("127.0.0.2", port, "slow", read_rate=8 * 1024 * 1024),
                          start=False)
    over = sinks.delivery_overrides(port, dns_port, retry=("60s", "60s", 2),
                                    timeouts={"data_block": "20s", "data_end": "30s"})
    over["limits"] = {"max_message_size": "64M"}
    t = ctx.tern(**over).start()

    h.step(f"{COUNT} messages of {SIZE >> 20} MB queued while the MX is down")
    originals = [big_message(n) for n in range(COUNT)]
    ids = [sinks.send(t, "a@client.example", ["user@relay.example"], o) for o in originals]
    # The first attempt finds the MX down; the others wait for that destination's retry.
    sinks.wait_delivery(t, to="user@relay.example", status="deferred", timeout=30)
    h.check(set(ids) <= set(t.queue_ids()), "all three are queued")

    h.step("the slow MX comes up; a flush delivers all three at once")
    sink.start()
    base = rss_kib(t.proc.pid)
    sinks.ternctl(t, "flush")
    peak = base
    deadline = time.monotonic() + 120
    for _ in range(100000):
        peak = max(peak, rss_kib(t.proc.pid))
        if len(sink.finished()) >= COUNT or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    got = sink.finished()
    h.check_eq(len(got), COUNT, "the sink finished every message")
    print(f"  ..   ternd RSS before {base} KiB, peak while delivering {peak} KiB")

    h.step("byte for byte")
    want = {hashlib.sha256(o).hexdigest(): o for o in originals}
    for mail, rcpts, length, digest, head in got:
        h.check(head.startswith(b"Received: "), "tern's Received: comes first")
        extra = head.index(b"\r\nFrom: ") + 2 if b"\r\nFrom: " in head else None
        h.check(extra is not None, "the original follows the Received: header")
        matches = [o for o in originals if len(o) == length - extra]
        h.check(matches, f"a message of {length - extra} bytes was sent")
        # Recompute what the sink should have hashed: its Received: header + an original.
        ok = any(hashlib.sha256(head[:extra] + o).hexdigest() == digest for o in matches)
        h.check(ok, "SHA-256 of the delivered data = Received: + original")
    sinks.wait_queue_empty(t, 30)

    h.step("memory stayed bounded")
    growth_mib = (peak - base) / 1024
    if sanitized():
        # AddressSanitizer keeps freed memory in quarantine: RSS says nothing there.
        print(f"  ..   sanitizer build: RSS grew {growth_mib:.1f} MiB (not checked)")
    else:
        h.check(growth_mib < 40, f"RSS grew {growth_mib:.1f} MiB delivering {COUNT} x {SIZE >> 20} MB (< 40 MiB)")
    t.stop()


h.main(scenario)
