#!/usr/bin/python3
"""Per-recipient refusals at RCPT: a 550 fails that recipient for good (status=bounced, the
message never reaches it) while the others of the same message are delivered; a 451 defers
only that recipient, which is delivered exactly once after the sink stops refusing, and the
other recipient is not sent a second copy by the retry.
Then the same at the other steps (data.example, 127.0.0.3): 550 to MAIL fails every recipient;
554 after the data fails every recipient with that reply; 451 after the data defers them, and
once the sink accepts they arrive exactly once."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def scenario(ctx):
    problems = []  # failures that do not stop the remaining checks
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
        ("data.example", "MX", (10, "mx.data.example")),
        ("mx.data.example", "A", "127.0.0.3"),
    ])
    mx1 = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1", rcpt_replies={
        "bad@relay.example": "550 5.1.1 No such user here",
        "later@relay.example": "451 4.2.1 Mailbox busy, try later",
    }))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port)).start()

    h.step("550 at RCPT: that recipient bounces, the other one gets the message")
    q1 = sinks.send(t, "alice@client.example", ["good@relay.example", "bad@relay.example"],
                    sinks.body("refused at rcpt"))
    sinks.wait_delivery(t, q1, "good@relay.example", "sent")
    bad = sinks.wait_delivery(t, q1, "bad@relay.example", "bounced")
    h.check(bad[0].dsn == "5.1.1" and "No such user" in bad[0].reply,
            "bad@: dsn=5.1.1 with the remote reply", repr(bad[0]))
    mx1.wait_messages(1, 5)
    got = mx1.messages()
    h.check_eq(len(got), 1, "one message at mx1")
    h.check_eq(got[0].rcpt_tos, ["good@relay.example"], "it was delivered to good@ only")
    st = sinks.status_of(t, q1)
    if st is not None:  # kept while a bounce is owed to the sender
        h.check_eq(st, {"good@relay.example": "delivered", "bad@relay.example": "failed"},
                   "queue file: good@ delivered, bad@ failed")
    h.check(not sinks.deliveries(t, q1, "bad@relay.example", "deferred"), "bad@ was never deferred")

    h.step("451 for one of two recipients: the other is delivered now, this one later")
    q2 = sinks.send(t, "alice@client.example", ["now@relay.example", "later@relay.example"],
                    sinks.body("deferred at rcpt"))
    sinks.wait_delivery(t, q2, "now@relay.example", "sent")
    d = sinks.wait_delivery(t, q2, "later@relay.example", "deferred")
    h.check(d[0].dsn == "4.2.1" and "Mailbox busy" in d[0].reply, "later@: deferred with the 451",
            repr(d[0]))
    st = sinks.status_of(t, q2)
    h.check(st is not None and st.get("later@relay.example") == "deferred"
            and st.get("now@relay.example") == "delivered",
            "queue file: now@ delivered, later@ deferred", repr(st))
    # Let a retry hit the 451 again (retry.initial is 1 s), then stop refusing.
    sinks.wait_delivery(t, q2, "later@relay.example", "deferred", count=2, timeout=10)
    h.check_eq(mx1.rcpt_counts().get("later@relay.example", 0), 0, "later@ not delivered yet")
    mx1.set_rcpt_reply("later@relay.example", None)
    t_open = time.monotonic()
    sinks.wait_delivery(t, q2, "later@relay.example", "sent", timeout=10)
    print(f"  ..   delivered {time.monotonic() - t_open:.1f}s after the sink stopped refusing")
    sinks.wait_until(lambda: sinks.status_of(t, q2) is None, 5, f"msg/{q2} removed")
    time.sleep(2.5)  # longer than retry.max: a stray retry would show up now
    counts = mx1.rcpt_counts()
    h.check_eq(counts.get("now@relay.example"), 1, "now@ received exactly one copy")
    h.check_eq(counts.get("later@relay.example"), 1, "later@ received exactly one copy")
    h.check_eq(counts.get("good@relay.example"), 1, "good@ (first message) still one copy")
    h.check("bad@relay.example" not in counts, "bad@ never received anything")
    h.check_eq(len(sinks.deliveries(t, q2, status="sent")), 2, "two status=sent lines for the second message")
    rcpt_later = [a for w, a in mx1.events("rcpt") if a == "later@relay.example"]
    h.check(len(rcpt_later) >= 3, f"later@ was offered {len(rcpt_later)} times (2 refused, 1 taken)")

    ds = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "data-sink"))
    two = ["x@data.example", "y@data.example"]
    h.step("550 to MAIL: every recipient fails")
    ds.mail_reply = "550 5.7.1 Sender not welcome"
    q3 = sinks.send(t, "alice@client.example", two, sinks.body("mail refused"))
    for r in two:
        d = sinks.wait_delivery(t, q3, r, timeout=10)
        h.check(d[0].status == "bounced" and "550 5.7.1 Sender not welcome" in d[0].reply,
                f"{r}: bounced with the remote reply", repr(d[0]))
        if d[0].dsn != "5.7.1":
            problems.append(f"MAIL refused with '550 5.7.1 ...': logged dsn={d[0].dsn}, not the "
                            f"remote 5.7.1 (line: {d[0].line.strip()})")
            print(f"  FAIL {problems[-1]}", flush=True)
        else:
            h.check(True, f"{r}: dsn=5.7.1")
    ds.mail_reply = None

    h.step("554 after the data: every recipient fails with it")
    ds.data_reply = "554 5.7.1 Content rejected"
    q4 = sinks.send(t, "alice@client.example", two, sinks.body("data refused"))
    for r in two:
        d = sinks.wait_delivery(t, q4, r, timeout=10)
        h.check(d[0].status == "bounced" and d[0].dsn == "5.7.1" and "Content rejected" in d[0].reply,
                f"{r}: bounced with the 554", repr(d[0]))

    h.step("451 after the data: deferred, then delivered once")
    ds.data_reply = "451 4.3.0 Try again later"
    q5 = sinks.send(t, "alice@client.example", two, sinks.body("data deferred"))
    for r in two:
        d = sinks.wait_delivery(t, q5, r, timeout=10)
        h.check(d[0].status == "deferred" and d[0].dsn == "4.3.0", f"{r}: deferred with the 451", repr(d[0]))
    ds.data_reply = None
    for r in two:
        sinks.wait_delivery(t, q5, r, "sent", timeout=10)
    sinks.wait_until(lambda: sinks.status_of(t, q5) is None, 5, f"msg/{q5} removed")
    time.sleep(2.5)
    h.check_eq(ds.rcpt_counts(), {r: 1 for r in two}, "accepted exactly once (after the 451)")
    h.check_eq(len(ds.messages()), 1, "one accepted transaction at data.example in all")
    t.stop()
    if problems:
        h.fail("; ".join(problems))


h.main(scenario)
