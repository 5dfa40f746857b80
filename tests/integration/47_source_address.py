#!/usr/bin/python3
"""delivery.source_address: outbound connections come from the configured address
(127.0.0.9 here, not the kernel's choice of 127.0.0.1), and that address counts as tern
itself for the MX self rule (an MX pointing at it is never used)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.9"])
    _, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
        ("loop.example", "MX", (5, "me.loop.example")),
        ("loop.example", "MX", (10, "mx1.relay.example")),
        ("me.loop.example", "A", "127.0.0.9"),
    ])
    mx1 = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, source_address="127.0.0.9")).start()

    h.step("delivery comes from 127.0.0.9")
    qid = sinks.send(t, "a@client.example", ["user@relay.example"], sinks.body("source"))
    sinks.wait_delivery(t, qid, "user@relay.example", "sent", timeout=20)
    peers = [m.peer[0] for m in mx1.messages()]
    h.check_eq(peers, ["127.0.0.9"], "the sink saw the configured source address")

    h.step("an MX at the source address is me: the self rule applies (tern is the best MX: 5.4.6)")
    qid2 = sinks.send(t, "a@client.example", ["user@loop.example"], sinks.body("loop"))
    d = sinks.wait_delivery(t, qid2, "user@loop.example", "bounced", timeout=20)
    h.check_eq(d[0].dsn, "5.4.6", "failed as a loop")
    h.check_eq(len(mx1.messages()), 1, "nothing more reached mx1")
    t.stop()


h.main(scenario)
