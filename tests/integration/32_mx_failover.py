#!/usr/bin/python3
"""MX failover within one delivery attempt: the preference-10 host fails and the message goes
to the preference-20 host (127.0.0.3) at once, not after a retry. Kinds of failure:
  refuse.example   nothing listens on the first host: connection refused
  tarpit.example   the first host accepts TCP but never greets (delivery.timeouts.greeting 2s)
  busy.example     the first host greets with 421
  nosvc.example    the first host greets with 554 (no SMTP service here)
Each: delivered exactly once to the second host, status=sent relay=mx2...[127.0.0.3], no
status=deferred line, and the first host saw the connection attempt."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

CASES = [
    # domain, first host's address, what listens there
    ("refuse.example", "127.0.0.2", None),
    ("tarpit.example", "127.0.0.4", "tarpit"),
    ("busy.example", "127.0.0.5", "421 4.3.2 Too busy, come back later"),
    ("nosvc.example", "127.0.0.6", "554 5.3.2 No SMTP service here"),
]


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.3", "127.0.0.2", "127.0.0.4", "127.0.0.5", "127.0.0.6"])
    records = [("mx2.shared.example", "A", "127.0.0.3")]
    firsts = {}
    for dom, addr, kind in CASES:
        records += [(dom, "MX", (10, f"mx1.{dom}")), (dom, "MX", (20, "mx2.shared.example")),
                    (f"mx1.{dom}", "A", addr)]
        if kind is not None:
            firsts[dom] = sinks.add_sink(ctx, sinks.RawSink(
                addr, port, f"first-{dom}", greeting=None if kind == "tarpit" else kind))
    dns, dns_port = sinks.start_dns(ctx, records)
    mx2 = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "mx2"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, timeouts={"greeting": "2s"})).start()

    for dom, addr, kind in CASES:
        rcpt = f"user@{dom}"
        h.step(f"{dom}: first MX {addr} {'refuses connections' if kind is None else kind}")
        t0 = time.monotonic()
        qid = sinks.send(t, "alice@client.example", [rcpt], sinks.body(f"failover {dom}"))
        d = sinks.wait_delivery(t, qid, rcpt, timeout=15)
        took = time.monotonic() - t0
        h.check(d[0].status == "sent", "the first outcome is status=sent", repr(d[0]))
        h.check_eq(d[0].relay, f"mx2.shared.example[127.0.0.3]:{port}", "delivered by the second MX")
        if kind == "tarpit":
            h.check(1.5 <= took < 8, f"after the 2 s greeting timeout ({took:.1f}s)")
        else:
            h.check(took < 3, f"at once ({took:.1f}s)")
        if dom in firsts:
            h.check(len(firsts[dom].connections()) >= 1, "the first MX was tried",
                    str(firsts[dom].connections()))
        sinks.wait_until(lambda: sinks.status_of(t, qid) is None, 5, f"msg/{qid} removed")

    time.sleep(1)
    counts = mx2.rcpt_counts()
    h.check_eq(counts, {f"user@{dom}": 1 for dom, _, _ in CASES}, "one copy of each at mx2")
    h.check(not sinks.deliveries(t, status="deferred"), "no status=deferred line at all",
            "\n".join(map(repr, sinks.deliveries(t, status="deferred"))))
    t.stop()


h.main(scenario)
