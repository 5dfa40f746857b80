#!/usr/bin/python3
"""routes: fixed next hops instead of MX.
  "*": 127.0.0.2:Q (a smarthost on its own port Q != delivery.port)
      - a domain without any DNS record goes there;
      - a domain with a working MX (127.0.0.5) goes there too, the MX sees nothing;
  special.example: 127.0.0.3 (no port: delivery.port) - a per-domain route wins over "*";
  named.example: relayhost.example:Q (a name, resolved by A: 127.0.0.4);
  broken.example: nohost.example (NXDOMAIN) - a route must never make mail bounce: deferred;
  filter.example: 127.0.0.1:F - a smarthost/content filter on tern's own address but another
      port is not a loop: delivered there;
  self.example: 127.0.0.1:<tern's own listening port> - a loop: fails with 5.4.6 at once, no
      copy comes back in;
  one message for nodns.example + special.example: two transactions, one per next hop.
Each delivered recipient arrives exactly once at the right sink and the log's relay= names it."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.3", "127.0.0.5"])
    q = sinks.pick_port(["127.0.0.2", "127.0.0.4"])
    h.check(q != port, "smarthost port differs from delivery.port")
    dns, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx.relay.example")),
        ("mx.relay.example", "A", "127.0.0.5"),
        ("relayhost.example", "A", "127.0.0.4"),
    ])
    smart = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", q, "smarthost"))
    special = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "special"))
    named = sinks.add_sink(ctx, sinks.Sink("127.0.0.4", q, "named"))
    fport = sinks.pick_port(["127.0.0.1"])
    filt = sinks.add_sink(ctx, sinks.Sink("127.0.0.1", fport, "filter"))
    mx = sinks.add_sink(ctx, sinks.Sink("127.0.0.5", port, "mx"))
    over = sinks.delivery_overrides(port, dns_port)
    # "*" must be quoted in YAML (a bare * starts an alias); harness.to_yaml writes keys as is.
    over["routes"] = {'"*"': f"127.0.0.2:{q}", "special.example": "127.0.0.3",
                      "named.example": f"relayhost.example:{q}", "broken.example": "nohost.example",
                      "filter.example": f"127.0.0.1:{fport}"}
    t = ctx.tern(**over)
    t.config["routes"]["self.example"] = f"127.0.0.1:{t.port}"  # tern's own listener
    t.write_config()
    t.start()

    cases = [("user@nodns.example", smart, f"127.0.0.2[127.0.0.2]:{q}"),
             ("user@relay.example", smart, f"127.0.0.2[127.0.0.2]:{q}"),
             ("user@special.example", special, f"127.0.0.3[127.0.0.3]:{port}"),
             ("user@named.example", named, f"relayhost.example[127.0.0.4]:{q}"),
             ("user@filter.example", filt, f"127.0.0.1[127.0.0.1]:{fport}")]
    for rcpt, sink, relay in cases:
        h.step(f"{rcpt} -> {sink.name}")
        qid = sinks.send(t, "alice@client.example", [rcpt], sinks.body(f"route {rcpt}"))
        d = sinks.wait_delivery(t, qid, rcpt, timeout=10)
        h.check(d[0].status == "sent", "status=sent", repr(d[0]))
        h.check_eq(d[0].relay, relay, "relay= is the route's next hop")

    h.step("one message, two routes: split by next hop")
    qid = sinks.send(t, "alice@client.example", ["two@nodns.example", "two@special.example"],
                     sinks.body("route split"))
    sinks.wait_delivery(t, qid, "two@nodns.example", "sent", timeout=10)
    sinks.wait_delivery(t, qid, "two@special.example", "sent", timeout=10)

    h.step("a route whose host does not resolve: deferred, not bounced")
    qb = sinks.send(t, "alice@client.example", ["user@broken.example"], sinks.body("route broken"))
    d = sinks.wait_delivery(t, qb, "user@broken.example", timeout=10)
    h.check(d[0].status == "deferred" and d[0].dsn.startswith("4."), "status=deferred, 4.x.x",
            repr(d[0]))

    h.step("a route to tern's own listening endpoint: 5.4.6, no loop")
    queued_before = t.log().count(" queued client=[127.0.0.1] from=<alice@client.example>")
    qs = sinks.send(t, "alice@client.example", ["user@self.example"], sinks.body("route self"))
    d = sinks.wait_delivery(t, qs, "user@self.example", timeout=10)
    h.check(d[0].status == "bounced" and d[0].dsn == "5.4.6", "status=bounced dsn=5.4.6", repr(d[0]))

    time.sleep(1)
    # Its bounce (to alice@client.example) is queued by tern itself; nothing else may be.
    h.check_eq(t.log().count(" queued client=[127.0.0.1] from=<alice@client.example>") - queued_before, 1,
               "only the test's copy was queued (nothing looped back in)")
    h.check_eq(len(sinks.deliveries(t, qs)), 1, "decided once")
    h.check_eq(filt.rcpt_counts(), {"user@filter.example": 1}, "the filter got its one")
    # The "*" route also carries the bounce for the looping route (to alice@client.example).
    got = {k: v for k, v in smart.rcpt_counts().items() if k != "alice@client.example"}
    h.check_eq(got, {"user@nodns.example": 1, "user@relay.example": 1,
                     "two@nodns.example": 1}, "smarthost got its three, once each")
    h.check_eq(special.rcpt_counts(), {"user@special.example": 1, "two@special.example": 1},
               "special got its two, once each")
    h.check_eq(named.rcpt_counts(), {"user@named.example": 1}, "named got its one")
    h.check_eq(len(mx.connections()), 0, "the MX of relay.example was not used")
    h.check(all(len(m.rcpt_tos) == 1 for s in (smart, special) for m in s.messages()),
            "the split message went as one transaction per next hop")
    h.check_eq([d.to for d in sinks.deliveries(t, status="bounced")], ["user@self.example"],
               "nothing else bounced")
    h.check_eq(sinks.status_of(t, qb), {"user@broken.example": "deferred"}, "broken.example still queued, deferred")
    t.stop()


h.main(scenario)
