#!/usr/bin/python3
"""The operator's commands against a live ternd (issue: operating tern):
  queue --json parses, with id, arrival, size, sender, held and per-recipient address,
      state, attempts, next_attempt, last_reply;
  show ID: envelope, each recipient's history (the deferral with its reply), headers;
      show --body adds the body; an unknown ID exits 1 and says so;
  hold ID survives a restart and is never attempted (a flush of everything delivers the
      others, not it); release ID gets it delivered;
  selectors: hold --sender picks only that sender's mail; delete --domain removes every
      message for the domain, from disk too, with no bounce;
  delete while an attempt is in flight: the connection is dropped, the slow next hop never
      gets the whole message;
  flush ID delivers one deferred message long before its retry;
  stats --json parses and counts; usage errors exit 2."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def ctl(t, *args, rc=0):
    p = sinks.ternctl(t, *args)
    h.check(p.returncode == rc, f"ternctl {' '.join(args)} exits {rc}", f"rc={p.returncode} {p.stdout}{p.stderr}")
    return p


def listing(t):
    return {m["id"]: m for m in json.loads(ctl(t, "queue", "--json").stdout)}


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("ops.example", "MX", (10, "mx.ops.example")), ("mx.ops.example", "A", "127.0.0.2"),
        ("slow.example", "MX", (10, "mx.slow.example")), ("mx.slow.example", "A", "127.0.0.3"),
    ])
    sink = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "ops"), start=False)
    slow = sinks.add_sink(ctx, sinks.ScriptedSink("127.0.0.3", port, "slow", read_rate=20000))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("60s", "120s", 2))).start()

    h.step("three messages deferred (the MX is down)")
    q1 = sinks.send(t, "a@client.example", ["u1@ops.example"], sinks.body("one", "first body\r\n"))
    q2 = sinks.send(t, "a@client.example", ["u2@ops.example"], sinks.body("two"))
    q3 = sinks.send(t, "other@client.example", ["u3@ops.example"], sinks.body("three"))
    # The first attempt fails and marks the destination down; the others may wait for its
    # probe without an attempt of their own.
    sinks.wait_delivery(t, q1, "u1@ops.example", "deferred", timeout=20)
    sinks.wait_until(lambda: {q1, q2, q3} <= set(listing(t)), 20, "all three are queued")

    h.step("queue --json")
    js = listing(t)
    h.check(set(js) >= {q1, q2, q3}, "the three messages are listed", repr(list(js)))
    m1 = js[q1]
    h.check_eq(m1["sender"], "a@client.example", "sender")
    h.check(m1["held"] is False and m1["size"] > 0 and m1["arrival"].endswith("Z"), "held/size/arrival", repr(m1))
    r1 = m1["recipients"][0]
    h.check_eq(r1["address"], "u1@ops.example", "recipient address")
    h.check_eq(r1["state"], "deferred", "recipient state")
    h.check(r1["attempts"] >= 1 and r1["next_attempt"] and r1["last_reply"], "attempts, next_attempt, last_reply",
            repr(r1))

    h.step("show and show --body")
    out = ctl(t, "show", q1).stdout
    h.check(f"id: {q1}" in out and "sender: <a@client.example>" in out, "envelope shown", out)
    h.check("recipient: <u1@ops.example> state=deferred" in out, "recipient state shown", out)
    h.check(" deferred relay=" in out and "reply=" in out, "the deferral is in the history", out)
    h.check("Subject: one" in out and "first body" not in out, "headers without the body", out)
    h.check("first body" in ctl(t, "show", "--body", q1).stdout, "show --body adds the body")
    p = ctl(t, "show", "00000000000", rc=1)
    h.check("no such message" in p.stderr, "an unknown id says so", p.stderr)

    h.step("hold survives a restart and is never attempted")
    out = ctl(t, "hold", q1).stdout
    h.check(f"{q1}: held" in out, "hold answers", out)
    h.check(listing(t)[q1]["held"] is True, "queue --json shows held")
    t.stop()
    t.start()
    h.check(listing(t)[q1]["held"] is True, "still held after a restart")
    sink.start()
    ctl(t, "flush")
    sinks.wait_delivery(t, q2, "u2@ops.example", "sent", timeout=20)
    sinks.wait_delivery(t, q3, "u3@ops.example", "sent", timeout=20)
    time.sleep(1.0)
    h.check(not sinks.deliveries(t, q1, status="sent"), "the held message was not delivered")
    h.check(not any("u1@ops.example" in m.rcpt_tos for m in sink.messages()), "nothing for u1 reached the sink")

    h.step("release: delivered at once")
    h.check(f"{q1}: released" in ctl(t, "release", q1).stdout, "release answers")
    sinks.wait_delivery(t, q1, "u1@ops.example", "sent", timeout=20)
    ctl(t, "release", q1, rc=1)  # gone now: no such message

    h.step("selectors: hold --sender, delete --domain (no bounce)")
    sink.stop()
    q4 = sinks.send(t, "a@client.example", ["u4@ops.example"], sinks.body("four"))
    q5 = sinks.send(t, "b@client.example", ["u5@ops.example"], sinks.body("five"))
    sinks.wait_until(lambda: {q4, q5} <= set(listing(t)), 20, "both are queued")
    out = ctl(t, "hold", "--sender", "b@client.example").stdout
    h.check(f"{q5}: held" in out and q4 not in out, "only b's message is held", out)
    out = ctl(t, "delete", "--domain", "ops.example").stdout
    h.check(f"{q4}: deleted" in out and f"{q5}: deleted" in out, "both deleted", out)
    h.check(q4 not in t.queue_ids() and q5 not in t.queue_ids(), "the files are gone")
    t.wait_log(f"qmgr: id={q5} deleted by uid=")
    time.sleep(0.5)
    h.check(t.queue_ids() == [], "no bounce was queued", repr(t.queue_ids()))

    h.step("delete while an attempt is in flight")
    big = sinks.body("slow", "x" * 998 + "\r\n") + ("y" * 998 + "\r\n").encode() * 1500
    q6 = sinks.send(t, "a@client.example", ["u6@slow.example"], big)
    sinks.wait_until(lambda: b"DATA" in b" ".join(slow.verbs), 20, "the slow MX is receiving the data")
    h.check(f"{q6}: deleted" in ctl(t, "delete", q6).stdout, "deleted")
    t.wait_log("attempt cancelled (its message was deleted)")
    time.sleep(2.0)
    h.check(not slow.finished(), "the slow MX never got the whole message")
    h.check(q6 not in t.queue_ids(), "the file is gone")
    h.check(not sinks.deliveries(t, q6, status="sent"), "no delivery was logged")

    h.step("flush ID: one deferred message, long before its retry")
    q7 = sinks.send(t, "a@client.example", ["u7@ops.example"], sinks.body("seven"))
    sinks.wait_until(lambda: q7 in listing(t), 20, "it is queued")
    time.sleep(0.5)
    sink.start()
    h.check(f"{q7}: flushed" in ctl(t, "flush", q7).stdout, "flush answers")
    sinks.wait_delivery(t, q7, "u7@ops.example", "sent", timeout=20)

    h.step("stats --json; usage errors")
    st = json.loads(ctl(t, "stats", "--json").stdout)
    h.check(st["received"] >= 4 and st["delivered"] >= 2 and st["deferred"] >= 1, "counters count", repr(st))
    h.check(st["queue"] == 0 and st["held"] == 0 and "rejected" in st, "gauges", repr(st))
    ctl(t, "hold", rc=2)
    ctl(t, "frobnicate", rc=2)
    ctl(t, "hold", "--all", q7, rc=2)


h.main(scenario)
