#!/usr/bin/python3
"""Connection reuse: 10 messages for reuse.example wait while its MX is down (retry 30 s);
the sink comes up and `ternctl flush` makes them due. With delivery.max_per_destination 3 the
sink must see at most 3 TCP connections (one EHLO each) carrying all 10 messages, each exactly
once, soon after the flush; the queue ends empty."""
import os
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
        ("reuse.example", "MX", (10, "mx.reuse.example")),
        ("mx.reuse.example", "A", "127.0.0.2"),
    ])
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("30s", "30s", 1),
                                            max_per_destination=PER_DEST)).start()

    h.step(f"{N} messages while the MX is down")
    rcpts = [f"u{i}@reuse.example" for i in range(N)]
    ids = [sinks.send(t, "alice@client.example", [r], sinks.body(f"reuse {r}")) for r in rcpts]
    sinks.wait_delivery(t, status="deferred", timeout=10)
    sinks.wait_until(lambda: (lambda q: q if set(ids) <= set(q) and all(
        q[i]["next"].startswith("in ") for i in ids) else None)(sinks.queue_listing(t)), 10,
        "all messages listed as waiting")
    h.check(True, f"all {N} messages wait for the retry")

    h.step("sink up, flush")
    sink = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx"))
    p = sinks.ternctl(t, "flush")
    h.check(p.returncode == 0, "ternctl flush exits 0", p.stderr)
    t0 = time.monotonic()
    sinks.wait_queue_empty(t, 10, "all delivered after the flush (queue empty)")
    print(f"  ..   took {time.monotonic() - t0:.1f}s")
    time.sleep(1)
    h.check_eq(sink.rcpt_counts(), {r: 1 for r in rcpts}, "each message exactly once")
    conns = sink.connections()
    print(f"  ..   {len(conns)} connection(s) for {N} messages")
    h.check(1 <= len(conns) <= PER_DEST, f"at most max_per_destination ({PER_DEST}) connections",
            str(conns))
    h.check(len(conns) < N, "fewer connections than messages (reuse)")
    h.check_eq(len(sink.events("ehlo")), len(conns), "one EHLO per connection")
    h.check_eq(len(sinks.deliveries(t, status="sent")), N, f"{N} status=sent lines")
    t.stop()


h.main(scenario)
