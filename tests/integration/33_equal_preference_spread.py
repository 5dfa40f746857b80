#!/usr/bin/python3
"""Equal preferences are tried in random order (RFC 5321 §5.1): 30 domains d1..d30.example,
each with MX 10 mxa.shared.example (127.0.0.2) and MX 10 mxb.shared.example (127.0.0.3), always
in that order in the DNS answer. One message per domain; both hosts must get a fair share (at
least 5 of 30 each; a fair coin falls below that with probability 6e-5, a missing shuffle
sends all 30 to one host). Each message arrives exactly once."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

N = 30
MIN_SHARE = 5


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])
    records = [("mxa.shared.example", "A", "127.0.0.2"), ("mxb.shared.example", "A", "127.0.0.3")]
    for i in range(1, N + 1):
        records += [(f"d{i}.example", "MX", (10, "mxa.shared.example")),
                    (f"d{i}.example", "MX", (10, "mxb.shared.example"))]
    dns, dns_port = sinks.start_dns(ctx, records)
    mxa = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mxa"))
    mxb = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "mxb"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port)).start()

    h.step(f"one message to each of d1..d{N}.example")
    for i in range(1, N + 1):
        sinks.send(t, "alice@client.example", [f"user@d{i}.example"], sinks.body(f"spread {i}"))
    sinks.wait_until(lambda: len(sinks.deliveries(t, status="sent")) >= N, 30,
                     f"{N} status=sent lines")
    sinks.wait_queue_empty(t, 5)
    time.sleep(0.5)
    a, b = mxa.rcpt_counts(), mxb.rcpt_counts()
    print(f"  ..   mxa got {sum(a.values())}, mxb got {sum(b.values())}")
    merged = {}
    for c in (a, b):
        for k, v in c.items():
            merged[k] = merged.get(k, 0) + v
    h.check_eq(merged, {f"user@d{i}.example": 1 for i in range(1, N + 1)},
               "every message arrived exactly once (at one of the two)")
    h.check(sum(a.values()) >= MIN_SHARE and sum(b.values()) >= MIN_SHARE,
            f"both hosts got at least {MIN_SHARE} of {N}",
            f"mxa {sum(a.values())}, mxb {sum(b.values())}")
    h.check(not sinks.deliveries(t, status="deferred"), "nothing deferred")
    t.stop()


h.main(scenario)
