#!/usr/bin/python3
"""MTA-STS testing mode, and policy answers that mean "no policy" (RFC 8461 §3.3, §5). Every
MX sink here presents a certificate from a CA tern does not trust and delivery.tls is `may`:
an enforce policy in force would defer the mail, so a delivery proves no policy applied.
  testing.example  mode testing: delivered, sts=testing, and a "testing policy failure"
                   line names the host and the certificate problem; a testing MX outside
                   the patterns is still used, and logged;
  moved.example    the policy URL answers 301 to a valid enforce policy: not followed, no
                   policy: delivered, no sts=;
  html.example     200 with Content-Type text/html: no policy;
  huge.example     200 text/plain but over 64 KiB: refused, no policy;
  endless.example  the same, 8 MiB without Content-Length: the transfer is cut off at 64 KiB
                   (libcurl itself would read it all), no policy;
  broken.example   a malformed policy (max_age too large): logged as malformed, no policy;
  badcert.example  the policy host's certificate is from another CA: no policy."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import harness as h  # noqa: E402
import sinks  # noqa: E402
import sts_helpers as s  # noqa: E402


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])
    ca = certs.TestCA(ctx.path("ca"))
    other = certs.TestCA(ctx.path("other-ca"), name="another CA")
    domains = ["testing.example", "moved.example", "html.example", "huge.example", "broken.example",
               "unlisted.example", "endless.example"]
    # mta_sts.https_port is one number: both policy servers share it.
    web_port = sinks.pick_port(["127.0.0.20", "127.0.0.21"])
    web = s.start_policy_server(ctx, ca, domains, port=web_port)
    # A second policy server whose own certificate the fetch must refuse.
    bad_web = s.start_policy_server(ctx, other, ["badcert.example"], address="127.0.0.21", port=web_port)
    enforce = s.policy("enforce", ["*.sink.example"])
    web.serve("testing.example", s.policy("testing", ["mx.testing.example"]))
    web.serve("unlisted.example", s.policy("testing", ["mx.elsewhere.example"]))
    web.serve("moved.example", "", status=301,
              Location=f"https://mta-sts.good.example:{web.port}{s.POLICY_PATH}")
    web.serve("good.example", enforce)  # where the redirect points: never asked for
    web.serve("html.example", enforce, Content_Type="text/html")
    web.serve("huge.example", enforce + "x-padding: " + "a" * 70000 + "\n")
    web.serve("endless.example", enforce + "x-padding: " + "a" * (8 << 20) + "\n", Content_Length=None)
    web.serve("broken.example", s.policy("enforce", ["mx.broken.example"], max_age=31557601))
    bad_web.serve("badcert.example", enforce)

    all_domains = domains + ["badcert.example"]
    records = []
    for i, d in enumerate(all_domains):
        name = d.split(".")[0]
        records += [(d, "MX", (10, f"mx.{name}.example")), (f"mx.{name}.example", "A", "127.0.0.2")]
        records += s.sts_records(d, bad_web if d == "badcert.example" else web, f"id{i}")
    dns, dns_port = sinks.start_dns(ctx, records)
    sink = s.tls_sink(ctx, "127.0.0.2", port, "mx", other, [f"mx.{d.split('.')[0]}.example" for d in all_domains])

    over = sinks.delivery_overrides(port, dns_port, retry=("60s", "120s", 2), tls="may", tls_ca_file=ca.ca_file)
    t = ctx.tern(mta_sts=s.mta_sts_config(ctx, web, ca.ca_file), **over).start()

    h.step("testing with a certificate tern cannot verify: delivered, and logged")
    q = sinks.send(t, "a@client.example", ["u@testing.example"], sinks.body("testing"))
    d = sinks.wait_delivery(t, q, "u@testing.example", "sent", timeout=30)[0]
    h.check_eq(d.sts, "testing", "the delivery line says sts=testing")
    h.check_eq(d.verified, "no", "verified=no")
    t.wait_log("mta-sts: testing policy failure domain=testing.example id=id0 host=mx.testing.example")
    text = [l for l in t.log().splitlines() if "testing policy failure domain=testing.example" in l]
    h.check(any("certificate not valid for the MX host" in l for l in text), "the failure names the certificate",
            repr(text))

    h.step("testing with an MX outside the patterns: still used, logged")
    q = sinks.send(t, "a@client.example", ["u@unlisted.example"], sinks.body("unlisted"))
    d = sinks.wait_delivery(t, q, "u@unlisted.example", "sent", timeout=30)[0]
    h.check_eq(d.sts, "testing", "sts=testing")
    t.wait_log("mta-sts: testing policy failure domain=unlisted.example id=id5 host=mx.unlisted.example: "
               "matches no mx pattern")

    for dom, why, log in [
            ("moved.example", "a 301 is not followed", "HTTP status 301"),
            ("html.example", "text/html is refused", "is not text/plain"),
            ("huge.example", "over 64 KiB is refused", "policy body over 64 KiB: transfer cut off"),
            ("endless.example", "a body without length is cut off at 64 KiB",
             "policy body over 64 KiB: transfer cut off"),
            ("broken.example", "a malformed policy is refused", "malformed policy: line 4: max_age 31557601 exceeds"),
            ("badcert.example", "a policy host with an untrusted certificate is refused", "not fetched: https://")]:
        h.step(f"{dom}: {why}, so no policy applies")
        q = sinks.send(t, "a@client.example", [f"u@{dom}"], sinks.body(dom))
        d = sinks.wait_delivery(t, q, f"u@{dom}", "sent", timeout=30)[0]
        h.check(d.sts is None, f"{dom}: delivered with no sts=", d.line)
        t.wait_log(f"mta-sts: domain={dom} policy id=")
        text = "\n".join(l for l in t.log().splitlines() if f"mta-sts: domain={dom} " in l)
        h.check(log in text and "no policy applies" in text, f"{dom}: the log says why ({log!r})", text)
    h.check(not web.hits_for("good.example"), "the redirect target was never requested")
    h.check(len(bad_web.hits_for("badcert.example")) == 0, "no request got through the untrusted handshake")
    h.check(len(sink.messages()) == 8, "every message was delivered", repr(len(sink.messages())))


h.main(scenario)
