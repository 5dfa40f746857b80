#!/usr/bin/python3
"""What the DNS answer means for delivery:
  null MX (MX 0 ".", RFC 7505; the domain also has an A record): the recipient fails at once
      with 5.1.10 (status=bounced, `ternctl queue` says failed), no connection to any host;
  NXDOMAIN: fails with 5.1.2, no connection;
  MX host without any address: fails (5.x.x), no connection;
  SERVFAIL: deferred (4.x.x), not failed;
  no answer at all (DROP): deferred with 4.4.3 after dns.timeout (3 s), not stuck;
  once the zone answers for those two, the retries deliver them;
  no MX but an A record (implicit MX, RFC 5321 §5.1): delivered to that address."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("nullmx.example", "MX", (0, ".")),
        ("nullmx.example", "A", "127.0.0.2"),
        ("implicit.example", "A", "127.0.0.2"),
        ("noaddr.example", "MX", (10, "gone.noaddr.example")),
        ("sf.example", "SERVFAIL", None),
        ("drop.example", "DROP", None),
    ])
    sink = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "sink"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port)).start()

    h.step("null MX: fails with 5.1.10, no connection")
    q_null = sinks.send(t, "alice@client.example", ["user@nullmx.example"], sinks.body("null mx"))
    d = sinks.wait_delivery(t, q_null, "user@nullmx.example", timeout=10)
    h.check(d[0].status == "bounced" and d[0].dsn == "5.1.10",
            "status=bounced dsn=5.1.10", repr(d[0]))
    # The failure is recorded, then a bounce is queued and the original leaves the queue.
    sinks.wait_until(lambda: f"bounce: id={q_null} bounce queued as" in t.log(), 10,
                     "a bounce for the null-MX message is queued")
    sinks.wait_until(lambda: q_null not in sinks.queue_listing(t), 10,
                     "the original leaves the queue once its bounce is queued")

    h.step("NXDOMAIN: fails with 5.1.2")
    q_nx = sinks.send(t, "alice@client.example", ["user@nowhere.example"], sinks.body("nxdomain"))
    d = sinks.wait_delivery(t, q_nx, "user@nowhere.example", timeout=10)
    h.check(d[0].status == "bounced" and d[0].dsn == "5.1.2", "status=bounced dsn=5.1.2", repr(d[0]))
    st = sinks.status_of(t, q_nx)
    h.check(st is None or st == {"user@nowhere.example": "failed"}, "queue file: failed", repr(st))

    h.step("an MX host without address: fails")
    q_na = sinks.send(t, "alice@client.example", ["user@noaddr.example"], sinks.body("no address"))
    d = sinks.wait_delivery(t, q_na, "user@noaddr.example", timeout=10)
    h.check(d[0].status == "bounced" and d[0].dsn.startswith("5."), "status=bounced, 5.x.x",
            repr(d[0]))

    h.step("SERVFAIL: deferred, not failed")
    q_sf = sinks.send(t, "alice@client.example", ["user@sf.example"], sinks.body("servfail"))
    d = sinks.wait_delivery(t, q_sf, "user@sf.example", timeout=12)
    h.check(d[0].status == "deferred" and d[0].dsn.startswith("4."), "status=deferred, 4.x.x",
            repr(d[0]))
    h.check_eq(sinks.status_of(t, q_sf), {"user@sf.example": "deferred"}, "queue file: deferred")

    h.step("no DNS answer at all: deferred after dns.timeout")
    t0 = time.monotonic()
    q_drop = sinks.send(t, "alice@client.example", ["user@drop.example"], sinks.body("dropped"))
    d = sinks.wait_delivery(t, q_drop, "user@drop.example", timeout=15)
    took = time.monotonic() - t0
    h.check(d[0].status == "deferred" and d[0].dsn == "4.4.3", "status=deferred dsn=4.4.3", repr(d[0]))
    h.check(2 <= took <= 10, f"after about dns.timeout = 3 s ({took:.1f}s)")

    time.sleep(0.5)
    h.check_eq(len(sink.connections()), 0, "no connection to the sink for any of these")
    h.check(not sinks.deliveries(t, q_null, status="sent") and not sinks.deliveries(t, q_nx, status="sent"),
            "nothing sent for null MX / NXDOMAIN")
    h.check_eq(len(sinks.deliveries(t, q_null)), 1, "null MX decided once (no retry)")
    h.check_eq(len(sinks.deliveries(t, q_nx)), 1, "NXDOMAIN decided once (no retry)")

    h.step("implicit MX: the domain's own A record")
    q_imp = sinks.send(t, "alice@client.example", ["user@implicit.example"], sinks.body("implicit"))
    d = sinks.wait_delivery(t, q_imp, "user@implicit.example", "sent", timeout=10)
    h.check_eq(d[0].relay, f"implicit.example[127.0.0.2]:{port}", "relay is the domain itself")
    sink.wait_messages(1, 5)
    h.check_eq(sink.rcpt_counts(), {"user@implicit.example": 1}, "the sink got exactly that message")
    sinks.wait_until(lambda: sinks.status_of(t, q_imp) is None, 5, f"msg/{q_imp} removed")

    h.step("the zone now answers for sf.example and drop.example: the retries deliver")
    dns.set_records([
        ("sf.example", "A", "127.0.0.2"),
        ("drop.example", "MX", (10, "implicit.example")),
        ("implicit.example", "A", "127.0.0.2"),
    ])
    sinks.wait_delivery(t, q_sf, "user@sf.example", "sent", timeout=10)
    sinks.wait_delivery(t, q_drop, "user@drop.example", "sent", timeout=10)
    time.sleep(0.5)
    h.check_eq(sink.rcpt_counts(), {"user@implicit.example": 1, "user@sf.example": 1,
                                    "user@drop.example": 1}, "one copy each")
    t.stop()


h.main(scenario)
