#!/usr/bin/python3
"""Delivery, end to end: a message relayed by a client in relay.networks to user@relay.example
(MX 10 mx1.relay.example = 127.0.0.2) reaches the sink there exactly once, byte for byte what
the queue file stored (tern's Received: header + the original), with the right envelope; the
log has the status=sent line naming the relay; the queue file is removed."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
    ])
    # The sink waits before its 250 so the queue file can be read while the
    # transaction is open (the file is removed right after the 250).
    mx1 = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1", data_delay=1.0))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port)).start()

    h.step("a message from the relay network to user@relay.example")
    original = (b"From: Alice <alice@client.example>\r\nTo: user@relay.example\r\n"
                b"Subject: end to end\r\nMessage-ID: <e2e.1@client.example>\r\n"
                b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\nLine one.\r\n"
                b".leading dot\r\n..two dots\r\n\r\nLast line.\r\n")
    t0 = time.monotonic()
    qid = sinks.send(t, "alice@client.example", ["user@relay.example"], original)
    print(f"  ..   queued as {qid}")

    h.step("the sink gets it; the queue file still exists while the 250 is pending")
    sinks.wait_until(lambda: mx1.messages(), 15, "mx1 received the message")
    path = os.path.join(t.msg_dir(), qid)
    h.check(os.path.exists(path), f"msg/{qid} exists while the transaction is open")
    stored = h.parse_queue_file(path)
    problem = h.stored_problem(stored, original)
    h.check(problem is None, "stored data = Received: header + original", str(problem))

    mx1.wait_messages(1, 10)
    got = mx1.messages()
    h.check_eq(len(got), 1, "mx1 received exactly one message")
    m = got[0]
    h.check_eq(m.data, stored.data, "bytes received = bytes stored (Received: + original)")
    h.check_eq(m.mail_from, "alice@client.example", "envelope sender")
    h.check_eq(m.rcpt_tos, ["user@relay.example"], "envelope recipients")
    h.check_eq(m.helo, h.HOSTNAME, "tern's EHLO name is its hostname")
    h.check(m.peer[0].startswith("127."), "connection came over loopback", str(m.peer))

    h.step("the log and the queue")
    ds = sinks.wait_delivery(t, qid, "user@relay.example", "sent", timeout=10)
    h.check_eq(len(ds), 1, "exactly one status=sent line")
    h.check_eq(ds[0].relay, f"mx1.relay.example[127.0.0.2]:{port}", "relay= names host[addr]:port")
    h.check(ds[0].dsn.startswith("2."), "dsn is 2.x.x", repr(ds[0]))
    h.check("queued as mx1-" in ds[0].reply, "the log carries the sink's reply", repr(ds[0]))
    sinks.wait_queue_empty(t, 10, f"msg/{qid} removed after delivery")
    h.check(not sinks.deliveries(t, status="deferred") and not sinks.deliveries(t, status="bounced"),
            "no deferred or bounced lines")
    h.check_eq(len(mx1.messages()), 1, "still exactly one message at mx1")
    h.check_eq(len(mx1.connections()), 1, "one connection to mx1")
    print(f"  ..   delivered in {time.monotonic() - t0:.1f}s (sink delay 1 s)")
    t.stop()


h.main(scenario)
