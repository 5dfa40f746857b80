#!/usr/bin/python3
"""MTA-STS enforce (RFC 8461 §4, §5): policies served over HTTPS (http.server + ssl, a
test-CA certificate for mta-sts.DOMAIN on loopback), `_mta-sts` TXT records from the test
DNS server; delivery.tls is `may`, so every refusal below is the policy's doing:
  good.example     MX matches, certificate from the test CA for the MX name: delivered,
                   verified=pkix, sts=enforce;
  badca.example    the MX's certificate comes from another CA: deferred 4.7.5, nothing
                   delivered (under plain `may` it would have gone);
  notls.example    the MX offers no STARTTLS: deferred, never sent in plaintext;
  outside.example  the most preferred MX is outside the mx patterns: never connected to,
                   the mail goes to the listed backup;
  nomatch.example  no MX matches: deferred 4.7.0 naming the policy, no connection at all;
  nopolicy.example same bad-CA sink, no TXT record: delivered as under `may`, no sts=."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import harness as h  # noqa: E402
import sinks  # noqa: E402
import sts_helpers as s  # noqa: E402


def scenario(ctx):
    addrs = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"]
    port = sinks.pick_port(addrs)
    ca = certs.TestCA(ctx.path("ca"))
    other = certs.TestCA(ctx.path("other-ca"), name="another CA")
    domains = ["good.example", "badca.example", "notls.example", "outside.example", "nomatch.example"]
    web = s.start_policy_server(ctx, ca, domains)
    web.serve("good.example", s.policy("enforce", ["mx.good.example"]))
    web.serve("badca.example", s.policy("enforce", ["mx.badca.example"]))
    web.serve("notls.example", s.policy("enforce", ["mx.notls.example"]))
    web.serve("outside.example", s.policy("enforce", ["*.outside.example"]))
    web.serve("nomatch.example", s.policy("enforce", ["mx.elsewhere.example"]))

    records = [
        ("good.example", "MX", (10, "mx.good.example")), ("mx.good.example", "A", "127.0.0.2"),
        ("badca.example", "MX", (10, "mx.badca.example")), ("mx.badca.example", "A", "127.0.0.3"),
        ("notls.example", "MX", (10, "mx.notls.example")), ("mx.notls.example", "A", "127.0.0.4"),
        ("outside.example", "MX", (5, "rogue.other.example")), ("rogue.other.example", "A", "127.0.0.5"),
        ("outside.example", "MX", (20, "backup.outside.example")), ("backup.outside.example", "A", "127.0.0.6"),
        ("nomatch.example", "MX", (10, "mx.nomatch.example")), ("mx.nomatch.example", "A", "127.0.0.7"),
        ("nopolicy.example", "MX", (10, "mx.nopolicy.example")), ("mx.nopolicy.example", "A", "127.0.0.3"),
    ]
    for i, d in enumerate(domains):
        records += s.sts_records(d, web, f"2026112{i}")
    dns, dns_port = sinks.start_dns(ctx, records)

    good = s.tls_sink(ctx, "127.0.0.2", port, "good", ca, ["mx.good.example"])
    badca = s.tls_sink(ctx, "127.0.0.3", port, "badca", other, ["mx.badca.example", "mx.nopolicy.example"])
    notls = s.tls_sink(ctx, "127.0.0.4", port, "notls", None, [])
    rogue = s.tls_sink(ctx, "127.0.0.5", port, "rogue", ca, ["rogue.other.example"])
    backup = s.tls_sink(ctx, "127.0.0.6", port, "backup", ca, ["backup.outside.example"])
    nomatch = s.tls_sink(ctx, "127.0.0.7", port, "nomatch", ca, ["mx.nomatch.example"])

    over = sinks.delivery_overrides(port, dns_port, retry=("60s", "120s", 2), tls="may", tls_ca_file=ca.ca_file)
    t = ctx.tern(mta_sts=s.mta_sts_config(ctx, web, ca.ca_file), **over).start()

    h.step("enforce, matching MX, certificate from the trusted CA: delivered, sts=enforce")
    q = sinks.send(t, "a@client.example", ["u@good.example"], sinks.body("good"))
    d = sinks.wait_delivery(t, q, "u@good.example", "sent", timeout=30)[0]
    h.check_eq(d.sts, "enforce", "the delivery line says sts=enforce")
    h.check_eq(d.verified, "pkix", "the MX certificate was verified (PKIX)")
    h.check(d.tls.startswith("TLSv1."), "over TLS", d.line)
    good.wait_messages(1, 10)
    t.wait_log("mta-sts: domain=good.example policy id=20261120 fetched: mode=enforce")
    h.check(web.hits_for("good.example") == [s.POLICY_PATH], "the policy was fetched once, at the well-known path",
            repr(web.hits_for("good.example")))

    h.step("enforce, certificate from another CA: deferred 4.7.5, not delivered")
    q = sinks.send(t, "a@client.example", ["u@badca.example"], sinks.body("badca"))
    d = sinks.wait_delivery(t, q, "u@badca.example", "deferred", timeout=30)[0]
    h.check_eq(d.dsn, "4.7.5", "deferred with 4.7.5")
    h.check_eq(d.sts, "enforce", "sts=enforce on the deferral")
    h.check("certificate verification failed" in d.reply, "the reason names the certificate", d.line)
    h.check(not badca.messages(), "nothing reached the sink with the untrusted certificate")

    h.step("enforce, no STARTTLS: deferred, never plaintext")
    q = sinks.send(t, "a@client.example", ["u@notls.example"], sinks.body("notls"))
    d = sinks.wait_delivery(t, q, "u@notls.example", "deferred", timeout=30)[0]
    h.check(d.dsn.startswith("4."), "deferred", d.line)
    h.check(not notls.messages(), "nothing was sent in plaintext")
    h.check(len(notls.connections()) >= 1, "tern did connect (and found no STARTTLS)")

    h.step("enforce: an MX outside the patterns is not used, the listed one is")
    q = sinks.send(t, "a@client.example", ["u@outside.example"], sinks.body("outside"))
    d = sinks.wait_delivery(t, q, "u@outside.example", "sent", timeout=30)[0]
    h.check("backup.outside.example" in d.relay, "delivered through the listed MX", d.relay)
    backup.wait_messages(1, 10)
    h.check_eq(len(rogue.connections()), 0, "the more preferred, unlisted MX was never connected to")
    t.wait_log("MX host rogue.other.example matches no mx pattern; not used")

    h.step("enforce: no MX matches: deferred 4.7.0, no connection")
    q = sinks.send(t, "a@client.example", ["u@nomatch.example"], sinks.body("nomatch"))
    d = sinks.wait_delivery(t, q, "u@nomatch.example", "deferred", timeout=30)[0]
    h.check_eq(d.dsn, "4.7.0", "deferred with 4.7.0")
    h.check("MTA-STS policy" in d.reply and "mx.nomatch.example" in d.reply, "the reason names the policy and host",
            d.line)
    h.check_eq(len(nomatch.connections()), 0, "the unlisted MX was never connected to")

    h.step("no policy (no TXT record): the same untrusted certificate is fine under may")
    q = sinks.send(t, "a@client.example", ["u@nopolicy.example"], sinks.body("nopolicy"))
    d = sinks.wait_delivery(t, q, "u@nopolicy.example", "sent", timeout=30)[0]
    h.check(d.sts is None, "no sts= on the line", d.line)
    h.check_eq(d.verified, "no", "verified=no, delivered anyway")
    h.check(not web.hits_for("nopolicy.example"), "no policy fetch without a TXT record")
    badca.wait_messages(1, 10)


h.main(scenario)
