#!/usr/bin/python3
"""Every MX host down, then up. The message is deferred (log status=deferred, `ternctl queue`
shows it deferred with the last reply and a next attempt), and once a sink listens it is
delivered exactly once: (a) by the scheduled retry alone, with short retry times; (b) with
long retry times, by `ternctl flush`, long before the retry would have come.
(c) down for longer than delivery.max_queue_time (4 s): the recipients fail with 5.4.7
(status=expired); a null-sender message then leaves the queue (no notice owed), a message
with a sender leaves once its bounce is queued; no delivery afterwards."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

RCPT = "user@relay.example"


def deferred_listing(t, qid, timeout=10):
    """Polls `ternctl queue` until qid is listed deferred with a reply and next=in Ns."""
    def look():
        e = sinks.queue_listing(t).get(qid)
        if e and e["rcpts"].get(RCPT, (None,))[0] == "deferred" and e["next"].startswith("in "):
            return e
        return None
    e = sinks.wait_until(look, timeout, f"ternctl queue lists {qid} deferred with next=in")
    print(f"  ..   {e['line']}")
    state, reply = e["rcpts"][RCPT]
    h.check(reply is not None and reply.startswith("4.4.1 ") and "127.0.0." in reply,
            "the listing carries the last reply (4.4.1 connection failed)", repr(reply))
    return e


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("relay.example", "MX", (20, "mx2.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
        ("mx2.relay.example", "A", "127.0.0.3"),
    ])

    h.step("(a) short retries: deferred while both MX hosts refuse, delivered by a retry")
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port)).start()
    qid = sinks.send(t, "alice@client.example", [RCPT], sinks.body("down then up"))
    d = sinks.wait_delivery(t, qid, RCPT, "deferred", timeout=10)
    h.check(d[0].dsn.startswith("4.4."), "status=deferred with a 4.4.x dsn", repr(d[0]))
    e = deferred_listing(t, qid)
    h.check(re.match(r"^in \d+s$", e["next"]) and int(e["next"][3:-1]) <= 3,
            "next attempt within retry.max (2 s)", e["next"])
    st = sinks.status_of(t, qid)
    h.check_eq(st, {RCPT: "deferred"}, "queue file: recipient deferred")
    sinks.wait_delivery(t, qid, RCPT, "deferred", count=2, timeout=10)
    h.check(True, "retried while down (a second status=deferred)")
    mx1 = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1"))
    t_up = time.monotonic()
    s = sinks.wait_delivery(t, qid, RCPT, "sent", timeout=10)
    print(f"  ..   delivered {time.monotonic() - t_up:.1f}s after mx1 came up")
    h.check_eq(s[0].relay, f"mx1.relay.example[127.0.0.2]:{port}", "delivered to mx1")
    sinks.wait_queue_empty(t, 5, f"msg/{qid} removed")
    time.sleep(2.5)
    h.check_eq(mx1.rcpt_counts(), {RCPT: 1}, "mx1 received exactly one copy")
    h.check_eq(len(sinks.deliveries(t, qid, status="sent")), 1, "one status=sent line")
    t.stop()
    mx1.stop()

    h.step("(b) long retries: ternctl flush makes the deferred message due at once")
    t2 = ctx.tern("ternd2", **sinks.delivery_overrides(port, dns_port, retry=("30s", "30s", 1))).start()
    qid = sinks.send(t2, "alice@client.example", [RCPT], sinks.body("flushed"))
    sinks.wait_delivery(t2, qid, RCPT, "deferred", timeout=10)
    e = deferred_listing(t2, qid)
    h.check(int(e["next"][3:-1]) >= 20, "next attempt is about 30 s away", e["next"])
    mx1b = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1b"))
    time.sleep(1.5)
    h.check_eq(len(mx1b.messages()), 0, "nothing delivered before the flush (retry is 30 s)")
    h.check_eq(len(sinks.deliveries(t2, qid, status="deferred")), 1, "no retry before the flush")
    p = sinks.ternctl(t2, "flush")
    h.check(p.returncode == 0, "ternctl flush exits 0", f"rc={p.returncode} {p.stderr!r}")
    h.check("flush" in p.stdout.lower(), "ternctl flush says what it did", repr(p.stdout))
    t_flush = time.monotonic()
    sinks.wait_delivery(t2, qid, RCPT, "sent", timeout=8)
    print(f"  ..   delivered {time.monotonic() - t_flush:.1f}s after the flush")
    sinks.wait_queue_empty(t2, 5, f"msg/{qid} removed")
    time.sleep(1)
    h.check_eq(mx1b.rcpt_counts(), {RCPT: 1}, "exactly one copy after the flush")
    t2.stop()
    mx1b.stop()

    h.step("(c) down longer than max_queue_time (4 s): expired")
    t3 = ctx.tern("ternd3", **sinks.delivery_overrides(port, dns_port, max_queue_time="4s")).start()
    t0 = time.monotonic()
    qa = sinks.send(t3, "alice@client.example", [RCPT], sinks.body("expires"))
    qb = sinks.send(t3, "", ["other@relay.example"], sinks.body("expires, null sender"))
    da = sinks.wait_delivery(t3, qa, RCPT, "expired", timeout=12)
    db = sinks.wait_delivery(t3, qb, "other@relay.example", "expired", timeout=12)
    took = time.monotonic() - t0
    h.check(3.5 <= took <= 9, f"expired after about max_queue_time ({took:.1f}s)")
    for d in (da[0], db[0]):
        h.check(d.dsn == "5.4.7" and "expired" in d.reply.lower(), "dsn=5.4.7, says expired", repr(d))
    h.check(len(sinks.deliveries(t3, qa, RCPT, "deferred")) >= 1, "deferred before it expired")
    sinks.wait_until(lambda: sinks.status_of(t3, qb) is None, 5, f"null-sender msg/{qb} removed")
    h.check(True, "the null-sender message left the queue")
    # The one with a sender is owed a bounce: it leaves once the bounce is queued.
    sinks.wait_until(lambda: f"bounce: id={qa} bounce queued as" in t3.log(), 5, f"a bounce for {qa} is queued")
    sinks.wait_until(lambda: sinks.status_of(t3, qa) is None, 5, f"msg/{qa} removed after its bounce")
    h.check(True, "the message with a sender left the queue after its bounce was queued")
    n = len(sinks.deliveries(t3))
    mx1c = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1c"))
    time.sleep(3)
    h.check_eq(len(mx1c.messages()), 0, "nothing delivered after expiry")
    h.check_eq(len(sinks.deliveries(t3)), n, "no further delivery lines")
    t3.stop()


h.main(scenario)
