#!/usr/bin/python3
"""tern is the most preferred MX of a domain (RFC 5321 §5.1): mail for it must fail with 5.4.6
at once instead of looping. tern listens on 127.0.0.1 on the delivery port itself, so a
delivery to itself would really arrive. Four domains:
  loop1.example  MX 10 <tern's hostname>
  loop2.example  MX 10 mx.loop2.example, whose A is tern's listen address
  loop3.example  MX 10 <tern's hostname> and MX 10 other.loop3.example (a live sink): equal
                 preference is discarded too, so the sink must get nothing
  loop4.example  no MX, A = tern's listen address (the implicit MX is tern)
  loop5.example  MX 10 nat.loop5.example = 127.0.0.9, listed in delivery.external_addresses
Each: status=bounced dsn=5.4.6 within a few seconds, never deferred, no connection from tern
to itself, exactly one queued copy, the queue file says failed."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

HOSTNAME = "backup.example"


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.1"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("loop1.example", "MX", (10, HOSTNAME)),
        (HOSTNAME, "A", "127.0.0.1"),
        ("loop2.example", "MX", (10, "mx.loop2.example")),
        ("mx.loop2.example", "A", "127.0.0.1"),
        ("loop3.example", "MX", (10, HOSTNAME)),
        ("loop3.example", "MX", (10, "other.loop3.example")),
        ("other.loop3.example", "A", "127.0.0.2"),
        ("loop4.example", "A", "127.0.0.1"),
        ("loop5.example", "MX", (10, "nat.loop5.example")),
        ("nat.loop5.example", "A", "127.0.0.9"),
    ])
    other = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "other"))
    over = sinks.delivery_overrides(port, dns_port, external_addresses=["127.0.0.9"])
    over.update(hostname=HOSTNAME, listen=[{"address": f"127.0.0.1:{port}"}])
    t = ctx.tern(**over)
    t.port = port
    t.start()
    connects_before = len(re.findall(r"smtpd: conn=\d+ connect from", t.log()))

    qids = []
    for n in (1, 2, 3, 4, 5):
        rcpt = f"user@loop{n}.example"
        h.step(f"{rcpt}")
        t0 = time.monotonic()
        qid = sinks.send(t, "alice@client.example", [rcpt], sinks.body(f"loop {n}"))
        qids.append(qid)
        d = sinks.wait_delivery(t, qid, rcpt, status=None, timeout=10)
        took = time.monotonic() - t0
        h.check(d[0].status == "bounced", "first outcome is status=bounced", repr(d[0]))
        h.check_eq(d[0].dsn, "5.4.6", "dsn=5.4.6 (routing loop)")
        h.check(took < 5, f"decided quickly ({took:.1f}s)")
        st = sinks.status_of(t, qid)
        h.check(st is None or st == {rcpt: "failed"}, "queue file: recipient failed", repr(st))
    time.sleep(2.5)  # a loop or a retry would show up by now
    # Only the five originals: their bounces (to client.example, which has no DNS) have
    # delivery lines of their own.
    all_ds = [x for x in sinks.deliveries(t) if x.id in qids]
    h.check_eq(len(all_ds), 5, "exactly one delivery line per message (no retries)")
    h.check(all(x.status == "bounced" and x.dsn == "5.4.6" for x in all_ds),
            "all five bounced with 5.4.6", "\n".join(map(repr, all_ds)))
    h.check(all("127.0.0.1" not in x.relay for x in all_ds), "no relay=...[127.0.0.1]")
    connects = len(re.findall(r"smtpd: conn=\d+ connect from", t.log())) - connects_before
    h.check_eq(connects, 5, "inbound connections: only the test client's 5 sessions")
    h.check_eq(t.log().count(" queued client=[127.0.0.1] from=<alice@client.example>"), 5,
               "five queued copies, no looped ones")
    h.check_eq(len(other.connections()), 0, "the equal-preference sink got no connection")
    t.stop()


h.main(scenario)
