#!/usr/bin/python3
"""The MTA-STS policy cache (RFC 8461 §5.1). cached.example has two MX hosts: rogue (pref 5,
not in the first policy) and mx (pref 10, listed); both present valid certificates, so
which one gets the mail shows which policy is in force.
  1. The first message fetches the policy (id 1, enforce, mx only): delivered via mx; the
     cache file (one per domain, readable) holds it.
  2. A second message uses the cache: no new request.
  3. The TXT record disappears and the policy URL starts answering 404; ternd restarts: the
     cached policy is read from disk and still enforced (mail via mx, rogue untouched).
  4. A TXT record with a new id: fetched again (testing, any *.cached.example host): the
     mail goes to rogue, the file now holds id 2.
  5. Another new id whose fetch fails (HTTP 500): the cached policy id 2 stays in force."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import harness as h  # noqa: E402
import sinks  # noqa: E402
import sts_helpers as s  # noqa: E402

DOMAIN = "cached.example"


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])
    ca = certs.TestCA(ctx.path("ca"))
    web = s.start_policy_server(ctx, ca, [DOMAIN])
    web.serve(DOMAIN, s.policy("enforce", ["mx.cached.example"]))
    base = [(DOMAIN, "MX", (10, "mx.cached.example")), ("mx.cached.example", "A", "127.0.0.2"),
            (DOMAIN, "MX", (5, "rogue.cached.example")), ("rogue.cached.example", "A", "127.0.0.3")]
    dns, dns_port = sinks.start_dns(ctx, base + s.sts_records(DOMAIN, web, "1"))
    mx = s.tls_sink(ctx, "127.0.0.2", port, "mx", ca, ["mx.cached.example"])
    rogue = s.tls_sink(ctx, "127.0.0.3", port, "rogue", ca, ["rogue.cached.example"])

    over = sinks.delivery_overrides(port, dns_port, retry=("60s", "120s", 2), tls="may", tls_ca_file=ca.ca_file)
    conf = s.mta_sts_config(ctx, web, ca.ca_file)
    cache_file = os.path.join(conf["cache_dir"], DOMAIN)
    t = ctx.tern(mta_sts=conf, **over).start()

    def deliver(n, what):
        rcpt = f"u{n}@{DOMAIN}"
        q = sinks.send(t, "a@client.example", [rcpt], sinks.body(what))
        return sinks.wait_delivery(t, q, rcpt, "sent", timeout=30)[0]

    h.step("first message: policy fetched, enforced, cached on disk")
    d = deliver(1, "first")
    h.check_eq(d.sts, "enforce", "sts=enforce")
    h.check("mx.cached.example" in d.relay, "delivered via the listed MX", d.relay)
    h.check_eq(len(rogue.connections()), 0, "the unlisted, more preferred MX was not used")
    h.check_eq(len(web.hits_for(DOMAIN)), 1, "one policy request")
    sinks.wait_until(lambda: os.path.exists(cache_file), 10, "the cache file exists")
    with open(cache_file) as f:
        text = f.read()
    h.check("id: 1\n" in text and "mode: enforce" in text and "mx: mx.cached.example" in text,
            "the cache file holds the id and the policy as served", text)
    h.check(not [n for n in os.listdir(conf["cache_dir"]) if n != DOMAIN], "no temporary file left",
            repr(os.listdir(conf["cache_dir"])))

    h.step("second message: served from the cache")
    d = deliver(2, "second")
    h.check_eq(d.sts, "enforce", "sts=enforce")
    h.check_eq(len(web.hits_for(DOMAIN)), 1, "no new policy request")

    h.step("TXT record removed, policy URL broken, ternd restarted: the cached policy holds")
    dns.set_records(base)
    web.serve(DOMAIN, "gone\n", status=404)
    t.stop()
    t.start()
    t.wait_log("mta-sts: 1 cached policy read from")
    d = deliver(3, "after restart")
    h.check_eq(d.sts, "enforce", "still sts=enforce after the restart, without a TXT record")
    h.check("mx.cached.example" in d.relay, "still only the listed MX", d.relay)
    h.check_eq(len(rogue.connections()), 0, "the unlisted MX is still not used")
    h.check_eq(len(web.hits_for(DOMAIN)), 1, "no fetch without a TXT record")

    h.step("a new id: the policy is fetched again")
    web.serve(DOMAIN, s.policy("testing", ["*.cached.example"]))
    dns.set_records(base + s.sts_records(DOMAIN, web, "2"))
    d = deliver(4, "new id")
    h.check_eq(len(web.hits_for(DOMAIN)), 2, "a second policy request")
    t.wait_log(f"mta-sts: domain={DOMAIN} policy id=2 fetched: mode=testing")
    h.check_eq(d.sts, "testing", "the new policy applies")
    h.check("rogue.cached.example" in d.relay, "the preferred MX, now listed, got the mail", d.relay)
    with open(cache_file) as f:
        text = f.read()
    h.check("id: 2\n" in text and "mode: testing" in text, "the cache file holds the new policy", text)

    h.step("another new id whose fetch fails: the cached policy stays in force")
    web.serve(DOMAIN, "oops\n", status=500)
    dns.set_records(base + s.sts_records(DOMAIN, web, "3"))
    d = deliver(5, "failed fetch")
    h.check_eq(len(web.hits_for(DOMAIN)), 3, "a third policy request")
    t.wait_log("keeping the cached policy id=2")
    h.check_eq(d.sts, "testing", "the cached policy (id 2) still applies")
    with open(cache_file) as f:
        h.check("id: 2\n" in f.read(), "the cache file is unchanged")


h.main(scenario)
