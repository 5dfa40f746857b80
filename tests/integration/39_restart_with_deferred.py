#!/usr/bin/python3
"""Restart with deferred mail in the queue. Two messages (three recipients) are deferred while
the MX is down, with retry times of a minute. Then:
  - SIGTERM: ternd exits 0 within timeouts.shutdown (10 s) although retries are scheduled a
    minute ahead (a pending retry timer must not hold the shutdown);
  - the deferred state is on disk (queue files say deferred);
  - a third message for half.example (its own MX, up) had one recipient delivered and one
    deferred (451) before the stop;
  - the sinks start / stop refusing, ternd starts again on the same queue (retry times now
    1 s): it recovers all three messages and delivers each outstanding recipient exactly once,
    the one already delivered is not sent again; the queue ends empty."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

RCPTS = {"q1": ["a@relay.example", "b@relay.example"], "q2": ["c@relay.example"]}


def scenario(ctx):
    problems = []
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
        ("half.example", "MX", (10, "mx.half.example")),
        ("mx.half.example", "A", "127.0.0.3"),
    ])
    half = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "half", rcpt_replies={
        "two@half.example": "451 4.3.0 Not now"}))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("60s", "60s", 1))).start()

    h.step("deferred while the MX is down")
    q1 = sinks.send(t, "alice@client.example", RCPTS["q1"], sinks.body("restart one"))
    sinks.wait_delivery(t, q1, RCPTS["q1"][0], "deferred", timeout=10)
    # With the destination down, a second message may wait untried; make it attempted too.
    p = sinks.ternctl(t, "flush")
    h.check(p.returncode == 0, "ternctl flush")
    q2 = sinks.send(t, "bob@client.example", RCPTS["q2"], sinks.body("restart two"))
    p = sinks.ternctl(t, "flush")
    sinks.wait_delivery(t, q2, RCPTS["q2"][0], "deferred", timeout=10)
    h.check_eq(sinks.status_of(t, q1), {r: "deferred" for r in RCPTS["q1"]}, "q1 deferred on disk")
    h.check_eq(sinks.status_of(t, q2), {r: "deferred" for r in RCPTS["q2"]}, "q2 deferred on disk")
    q3 = sinks.send(t, "carol@client.example", ["one@half.example", "two@half.example"],
                    sinks.body("restart three"))
    sinks.wait_delivery(t, q3, "one@half.example", "sent", timeout=10)
    sinks.wait_delivery(t, q3, "two@half.example", "deferred", timeout=10)
    h.check_eq(sinks.status_of(t, q3), {"one@half.example": "delivered", "two@half.example": "deferred"},
               "q3 half delivered, half deferred on disk")

    h.step("SIGTERM with retries scheduled a minute ahead")
    t0 = time.monotonic()
    t.proc.send_signal(15)
    try:
        rc = t.proc.wait(timeout=12)
        took = time.monotonic() - t0
        print(f"  ..   exited {rc} after {took:.1f}s")
        h.check_eq(rc, 0, "ternd exits 0 after SIGTERM")
    except subprocess.TimeoutExpired:
        stopped = "ternd: stopped" in t.log()
        t.kill9()
        problems.append(f"ternd had not exited 12 s after SIGTERM (killed with SIGKILL; log says "
                        f"{'ternd: stopped' if stopped else 'no ternd: stopped'}) although "
                        f"timeouts.shutdown is 10s and nothing was in flight")
        print(f"  FAIL {problems[-1]}", flush=True)
    h.check_eq(sorted(t.queue_ids()), sorted([q1, q2, q3]), "all three messages still queued")

    h.step("sink up, ternd restarted on the same queue with 1 s retries")
    sink = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1"))
    half.set_rcpt_reply("two@half.example", None)
    t.config["delivery"]["retry"] = {"initial": "1s", "max": "2s", "factor": 2}
    t.write_config()
    t.start()
    t.wait_log("queue: recovered", count=2)  # written by ternd's logging thread
    h.check("queue: recovered 3 message(s)" in t.log().split("==== start #2 ====")[-1],
            "ternd recovered the three messages")
    t_up = time.monotonic()
    sinks.wait_queue_empty(t, 15, "every recipient delivered after the restart (queue empty)")
    print(f"  ..   delivered within {time.monotonic() - t_up:.1f}s of the restart")
    time.sleep(2.5)
    h.check_eq(sink.rcpt_counts(), {r: 1 for rs in RCPTS.values() for r in rs},
               "each recipient got exactly one copy")
    h.check_eq(half.rcpt_counts(), {"one@half.example": 1, "two@half.example": 1},
               "half.example: the recipient delivered before the stop was not sent again")
    h.check_eq(len(sinks.deliveries(t, q3, "one@half.example", "sent")), 1, "one status=sent for one@half")
    for qid, rs in ((q1, RCPTS["q1"]), (q2, RCPTS["q2"])):
        for r in rs:
            h.check_eq(len(sinks.deliveries(t, qid, r, "sent")), 1, f"{qid} {r}: one status=sent")
    t.stop()
    if problems:
        h.fail("; ".join(problems))


h.main(scenario)
