#!/usr/bin/python3
"""tern as the backup MX of partner.example (relay.domains). partner.example has MX 10
primary.partner.example (127.0.0.2, down at first) and MX 20 = tern itself. tern listens on
127.0.0.1 on the very port it delivers to, so a delivery to itself would really loop.

An outsider (127.0.0.5) sends to user@partner.example: accepted; while the primary is down the
mail stays deferred and is never sent to tern itself (no relay=...127.0.0.1 line, no second
inbound connection or queued copy); when the primary comes up it gets the message exactly once.
Twice: (a) the MX 20 host is tern's hostname; (b) it is another name whose address is tern's
listen address (the self rule by address).

(The zone server only serves names under .example, so tern's hostname here is
backup.example rather than the brief's backup.example.net; the rule tested is the same.)"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

HOSTNAME = "backup.example"
OUTSIDER = "127.0.0.5"


def inbound_connects(t):
    """SMTP connections tern accepted, by client address."""
    return re.findall(r"smtpd: conn=\d+ connect from \[([0-9.]+)\]", t.log())


def phase(ctx, t, dns, port, label, records, rcpt):
    dns.set_records(records)
    before_local = inbound_connects(t).count("127.0.0.1")
    before_queued = t.log().count(" queued client=")
    h.step(f"{label}: an outsider sends to {rcpt} while the primary is down")
    qid = sinks.send(t, "someone@outside.example", [rcpt], sinks.body(f"backup {label}"),
                     source=OUTSIDER)
    d = sinks.wait_delivery(t, qid, rcpt, "deferred", timeout=10)
    h.check("127.0.0.2" in d[0].reply and d[0].dsn.startswith("4."),
            "deferred: the primary (127.0.0.2) refused the connection", repr(d[0]))
    sinks.wait_delivery(t, qid, rcpt, "deferred", count=2, timeout=10)
    h.check(True, "still deferred after a retry")
    st = sinks.status_of(t, qid)
    h.check_eq(st, {rcpt: "deferred"}, "queue file: recipient deferred")
    primary = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, f"primary-{label}"))
    sinks.wait_delivery(t, qid, rcpt, "sent", timeout=10)
    sinks.wait_queue_empty(t, 5, f"msg/{qid} removed")
    time.sleep(2.5)
    h.check_eq(primary.rcpt_counts(), {rcpt: 1}, "the primary received exactly one copy")
    m = primary.messages()[0]
    h.check_eq(m.mail_from, "someone@outside.example", "envelope sender kept")
    ds = sinks.deliveries(t, qid)
    h.check(all("127.0.0.1" not in x.relay and HOSTNAME not in x.relay
                and not x.relay.startswith("mx-b.") for x in ds),
            "no delivery attempt to tern itself", "\n".join(map(repr, ds)))
    h.check(all(x.relay == "none" or x.relay.startswith("primary.partner.example[127.0.0.2]")
                for x in ds), "every attempt went to the primary", "\n".join(map(repr, ds)))
    h.check_eq(inbound_connects(t).count("127.0.0.1") - before_local, 0,
               "tern's listener saw no connection from itself")
    h.check_eq(t.log().count(" queued client=") - before_queued, 1,
               "one copy queued (no looped second copy)")
    primary.stop()


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.1"])
    dns, dns_port = sinks.start_dns(ctx, [])
    over = sinks.delivery_overrides(port, dns_port)
    over.update(hostname=HOSTNAME,
                listen=[{"address": f"127.0.0.1:{port}"}],
                relay={"networks": ["127.0.0.1/32"], "domains": ["partner.example"]})
    t = ctx.tern(**over)
    t.port = port  # tern listens on the delivery port: a loop would reach it
    t.start()

    phase(ctx, t, dns, port, "a", [
        ("partner.example", "MX", (10, "primary.partner.example")),
        ("partner.example", "MX", (20, HOSTNAME)),
        ("primary.partner.example", "A", "127.0.0.2"),
        (HOSTNAME, "A", "127.0.0.1"),
    ], "user@partner.example")
    phase(ctx, t, dns, port, "b", [
        ("partner.example", "MX", (10, "primary.partner.example")),
        ("partner.example", "MX", (20, "mx-b.partner.example")),
        ("primary.partner.example", "A", "127.0.0.2"),
        ("mx-b.partner.example", "A", "127.0.0.1"),
    ], "other@partner.example")
    t.stop()


h.main(scenario)
