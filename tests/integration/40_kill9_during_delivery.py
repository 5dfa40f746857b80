#!/usr/bin/python3
"""SIGKILL while deliveries are in flight. A sink that waits 2 s before answering the end of
data; 10 messages for slow.example (max_per_destination 3); ternd is killed while some
transactions are open, then restarted on the same queue. Afterwards:
  - every message was acknowledged by the sink at least once (nothing lost);
  - nobody got more than two copies, and the duplicates are at most the transactions that
    were open at the kill (<= max_per_destination = 3);
  - a message the sink acknowledged more than a second before the kill is not sent again
    (its delivered state was durable);
  - the queue ends empty.
Then the graceful counterpart: SIGTERM while a transaction waits for the end-of-data reply:
the transaction finishes (status=sent logged), ternd exits 0 within timeouts.shutdown, and
after a restart the rest is delivered with no duplicate at all.
Last, the same ambiguity without a crash: the end-of-data reply does not come within
delivery.timeouts.data_end (2 s): deferred with 4.4.2 "(after the data was sent)", retried,
delivered; the sink has at most that one extra copy."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

N = 10
PER_DEST = 3


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("slow.example", "MX", (10, "mx.slow.example")),
        ("mx.slow.example", "A", "127.0.0.2"),
    ])
    sink = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "slow", data_delay=2.0))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, max_per_destination=PER_DEST,
                                            timeouts={"data_end": "4s"})).start()

    h.step(f"{N} messages; kill -9 while transactions are open")
    rcpts = [f"u{i}@slow.example" for i in range(N)]
    ids = [sinks.send(t, "alice@client.example", [r], sinks.body(f"kill9 {r}")) for r in rcpts]
    # Wait until the first round was acknowledged over 1.2 s ago and the next transactions
    # are open (the sink takes 2 s per end of data).
    sinks.wait_until(lambda: len([m for m in sink.acked()
                                  if m.acked_time < time.monotonic() - 1.2]) >= PER_DEST
                     and len(sink.messages()) > len(sink.acked()), 15,
                     "some messages acknowledged a while ago and others in flight")
    t.proc.send_signal(signal.SIGKILL)
    t.wait_exit(10)
    kill_time = time.monotonic()
    before = sink.messages()
    acked_early = {m.rcpt_tos[0].lower() for m in before
                   if m.acked and m.acked_time < kill_time - 1.0}
    open_at_kill = [m for m in before if not m.acked]
    print(f"  ..   at the kill: {len(before)} received, {len([m for m in before if m.acked])} "
          f"acknowledged ({len(acked_early)} over 1 s before), {len(open_at_kill)} open")
    h.check(len(open_at_kill) >= 1, "at least one transaction was open at the kill")
    h.check(len(acked_early) >= 1, "some mail was acknowledged well before the kill")
    h.check(len(os.listdir(t.msg_dir())) >= N - len(before), "undelivered mail is still queued")

    h.step("restart on the same queue; the sink answers fast now")
    sink.data_delay = 0.1
    t.start()
    t.wait_log("queue: recovered", count=2)  # written by ternd's logging thread
    h.check("queue: recovered" in t.log().split("==== start #2 ====")[-1], "ternd recovered the queue")
    sinks.wait_queue_empty(t, 25, "every message delivered after the restart (queue empty)")
    time.sleep(2.5)  # a stray retry would show up by now

    acked_counts = {}
    for m in sink.acked():
        for r in m.rcpt_tos:
            acked_counts[r.lower()] = acked_counts.get(r.lower(), 0) + 1
    all_counts = sink.rcpt_counts()
    missing = [r for r in rcpts if acked_counts.get(r, 0) < 1]
    h.check(not missing, "every message was acknowledged by the sink at least once", str(missing))
    dups = {r: c for r, c in all_counts.items() if c > 1}
    print(f"  ..   copies received per recipient: {all_counts}")
    h.check(all(c <= 2 for c in all_counts.values()), "nobody got more than two copies", str(dups))
    h.check(sum(c - 1 for c in dups.values()) <= PER_DEST,
            f"duplicates ({sum(c - 1 for c in dups.values())}) <= max_per_destination ({PER_DEST})",
            str(dups))
    bad = sorted(r for r in acked_early if all_counts.get(r, 0) > 1)
    h.check(not bad, "no second copy of mail acknowledged over 1 s before the kill", str(bad))
    h.check_eq(set(all_counts), set(rcpts), "nothing unexpected arrived")
    h.check(not any(os.path.exists(os.path.join(t.msg_dir(), q)) for q in ids), "every msg/ file gone")

    h.step("SIGTERM while a transaction is open: it finishes, no duplicate afterwards")
    sink.data_delay = 2.0
    before_counts = sink.rcpt_counts()
    more = [f"v{i}@slow.example" for i in range(4)]
    for r in more:
        sinks.send(t, "alice@client.example", [r], sinks.body(f"sigterm {r}"))
    def new_open():
        return [m for m in sink.messages() if m.rcpt_tos[0].startswith("v") and not m.acked]
    sinks.wait_until(new_open, 10, "a transaction is open")
    t0 = time.monotonic()
    t.proc.send_signal(signal.SIGTERM)
    rc = t.wait_exit(15)
    took = time.monotonic() - t0
    h.check_eq(rc, 0, f"ternd exits 0 after SIGTERM ({took:.1f}s)")
    h.check(took < 11, "within timeouts.shutdown (10 s)")
    open_after = new_open()
    h.check_eq(open_after, [], "no transaction was cut off (every data the sink got was answered)")
    acked_now = {r for r, c in sink.rcpt_counts().items() if r.startswith("v")}
    sent_lines = {d.to for d in sinks.deliveries(t, status="sent") if d.to.startswith("v")}
    h.check_eq(sent_lines, acked_now, "every transaction the sink answered was recorded as sent")
    h.check(len(acked_now) >= 1, f"{len(acked_now)} of the new messages went out before the exit")
    sink.data_delay = 0.1
    t.start()
    sinks.wait_queue_empty(t, 20, "the rest delivered after the restart (queue empty)")
    time.sleep(2.5)
    counts = sink.rcpt_counts()
    h.check_eq({r: counts.get(r, 0) for r in more}, {r: 1 for r in more},
               "each message sent around the SIGTERM arrived exactly once")
    h.check_eq({r: counts[r] for r in before_counts}, before_counts, "nothing older resent")
    t.stop()

    h.step("no end-of-data reply within timeouts.data_end (2 s)")
    t.config["delivery"]["timeouts"]["data_end"] = "2s"
    t.write_config()
    t.start()
    sink.data_delay = 4.0
    rcpt = "late@slow.example"
    t0 = time.monotonic()
    qid = sinks.send(t, "alice@client.example", [rcpt], sinks.body("late reply"))
    d = sinks.wait_delivery(t, qid, rcpt, timeout=10)
    took = time.monotonic() - t0
    h.check(d[0].status == "deferred" and d[0].dsn == "4.4.2" and "after the data was sent" in d[0].reply,
            "status=deferred dsn=4.4.2, says the data was sent", repr(d[0]))
    h.check(1.5 <= took <= 6, f"after the 2 s timeout ({took:.1f}s)")
    sink.data_delay = 0.0
    sinks.wait_delivery(t, qid, rcpt, "sent", timeout=10)
    sinks.wait_queue_empty(t, 5)
    time.sleep(4)  # the first (late) transaction's reply has come and gone
    n = sink.rcpt_counts().get(rcpt, 0)
    h.check(1 <= n <= 2, f"{n} copies: the retry plus at most the timed-out one")
    h.check_eq(len(sinks.deliveries(t, qid, rcpt, "sent")), 1, "one status=sent")
    t.stop()


h.main(scenario)
