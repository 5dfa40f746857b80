#!/usr/bin/python3
"""Deadlines measure time in a state, not silence: the preferred MX drips its greeting one
byte per second (20 s for the whole line) against a 3 s greeting timeout. tern gives up on
it after the timeout, logs one line for that address, and delivers through the second MX;
the dripping host never gets the message. Then with the second MX down too, the deferral
names every address tried and why."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])
    _, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("relay.example", "MX", (20, "mx2.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
        ("mx2.relay.example", "A", "127.0.0.3"),
    ])
    drip = sinks.add_sink(ctx, sinks.ScriptedSink("127.0.0.2", port, "dripper", drip=1.0))
    mx2 = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "mx2"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, timeouts={"greeting": "3s"})).start()

    h.step("a message: mx1 drips its greeting, mx2 is fine")
    qid = sinks.send(t, "a@client.example", ["user@relay.example"], sinks.body("drip"))
    ds = sinks.wait_delivery(t, qid, "user@relay.example", "sent", timeout=30)
    h.check(ds[0].relay.startswith("mx2.relay.example[127.0.0.3]"), "delivered through mx2", ds[0].relay)
    h.check_eq(len(mx2.messages()), 1, "mx2 has it")
    h.check_eq(drip.finished(), [], "the dripping mx1 never got a transaction")
    lines = [ln for ln in t.log().splitlines()
             if f"id={qid} dest=mx:relay.example host=mx1.relay.example address=127.0.0.2 port={port} failed:" in ln]
    h.check_eq(len(lines), 1, "one log line for the failed preferred address")
    h.check("greeting" in lines[0].lower(), "it says the greeting timed out", lines[0])

    h.step("both down: the deferral lists every address tried")
    mx2.stop()
    drip.stop()
    qid2 = sinks.send(t, "a@client.example", ["user@relay.example"], sinks.body("both down"))
    d2 = sinks.wait_delivery(t, qid2, "user@relay.example", "deferred", timeout=30)
    h.check("127.0.0.2" in d2[0].reply and "127.0.0.3" in d2[0].reply,
            "the deferred reason names both addresses", d2[0].reply)
    t.stop()


h.main(scenario)
