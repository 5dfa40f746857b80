#!/usr/bin/python3
"""MX preference order: pref.example has MX 30, 10 and 20 (listed in that order in the DNS
answer), all three up. Every one of 6 messages goes to the preference-10 host; the others see
no connection at all."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

N = 6


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("pref.example", "MX", (30, "mx30.pref.example")),
        ("pref.example", "MX", (10, "mx10.pref.example")),
        ("pref.example", "MX", (20, "mx20.pref.example")),
        ("mx10.pref.example", "A", "127.0.0.2"),
        ("mx20.pref.example", "A", "127.0.0.3"),
        ("mx30.pref.example", "A", "127.0.0.4"),
    ])
    mx10 = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx10"))
    mx20 = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "mx20"))
    mx30 = sinks.add_sink(ctx, sinks.Sink("127.0.0.4", port, "mx30"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port)).start()

    h.step(f"{N} messages to pref.example, sent one after another")
    ids = []
    for i in range(N):
        ids.append(sinks.send(t, "alice@client.example", [f"u{i}@pref.example"],
                              sinks.body(f"preference {i}")))
        time.sleep(0.1)  # separate deliveries, separate MX orderings
    for qid in ids:
        sinks.wait_delivery(t, qid, status="sent", timeout=15)
    sinks.wait_queue_empty(t, 5)
    time.sleep(0.5)
    ds = sinks.deliveries(t)
    h.check_eq(len(ds), N, f"{N} delivery lines")
    h.check(all(d.status == "sent" and d.relay == f"mx10.pref.example[127.0.0.2]:{port}" for d in ds),
            "every delivery went to mx10 (preference 10)", "\n".join(map(repr, ds)))
    h.check_eq(mx10.rcpt_counts(), {f"u{i}@pref.example": 1 for i in range(N)},
               "mx10 got each message exactly once")
    h.check_eq((len(mx20.connections()), len(mx30.connections())), (0, 0),
               "mx20 and mx30 saw no connection")
    t.stop()


h.main(scenario)
