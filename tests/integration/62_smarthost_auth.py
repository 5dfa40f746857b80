#!/usr/bin/python3
"""Smarthosts with AUTH (RFC 4954 client side), as a relay through a provider needs:
  starttls.example   route {next_hop: smarthost.example:Q, auth}: STARTTLS, verify against
                     the test CA (default with auth), AUTH PLAIN; the sink saw the right user;
  implicit.example   route {next_hop: smtps.example:P, implicit_tls: true, auth}: TLS from the
                     first byte (port-465 style), delivered, the sink saw the user;
  notls.example      a smarthost that offers no STARTTLS: deferred 4.7.4, the credentials are
                     never sent (the sink saw no AUTH);
  badpass.example    the smarthost refuses the password (535): deferred 4.7.8 (a configuration
                     problem, not the recipient's), the reason logged, no bounce;
and the route's password file must be readable by its owner only (--check refuses 0644)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import harness as h  # noqa: E402
import sinks  # noqa: E402

USER = "app@example.net"
PASSWORD = "s3cret pass phrase"


def scenario(ctx):
    q = sinks.pick_port(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    p = sinks.pick_port(["127.0.0.5"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("smarthost.example", "A", "127.0.0.2"),
        ("plainhost.example", "A", "127.0.0.3"),
        ("strict.example", "A", "127.0.0.4"),
        ("smtps.example", "A", "127.0.0.5"),
    ])
    ca = certs.TestCA(ctx.path("ca"))
    users = {USER: PASSWORD}
    starttls = sinks.add_sink(ctx, sinks.Sink(
        "127.0.0.2", q, "starttls", tls_context=ca.server_context(ca.issue(["smarthost.example"])),
        auth_users=users))
    plain = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", q, "plain", auth_users=users))
    strict = sinks.add_sink(ctx, sinks.Sink(
        "127.0.0.4", q, "strict", tls_context=ca.server_context(ca.issue(["strict.example"])),
        auth_users={USER: "another password"}))
    implicit = sinks.add_sink(ctx, sinks.Sink(
        "127.0.0.5", p, "implicit", implicit_tls_context=ca.server_context(ca.issue(["smtps.example"])),
        auth_users=users))

    secret = ctx.path("smarthost.secret")
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(PASSWORD + "\n")
    auth = {"username": USER, "password_file": secret}
    over = sinks.delivery_overrides(25, dns_port, retry=("30s", "60s", 2), tls_ca_file=ca.ca_file)
    over["routes"] = {
        "starttls.example": {"next_hop": f"smarthost.example:{q}", "auth": auth},
        "implicit.example": {"next_hop": f"smtps.example:{p}", "implicit_tls": "true", "auth": auth},
        "notls.example": {"next_hop": f"plainhost.example:{q}", "auth": auth},
        "badpass.example": {"next_hop": f"strict.example:{q}", "auth": auth},
    }
    t = ctx.tern(**over).start()

    h.step("STARTTLS + AUTH to a smarthost: delivered, right user")
    qid = sinks.send(t, "a@client.example", ["u@starttls.example"], sinks.body("starttls"))
    d = sinks.wait_delivery(t, qid, "u@starttls.example", "sent", timeout=20)[0]
    h.check(d.tls.startswith("TLSv1.") and d.verified == "pkix", "over verified TLS", d.line)
    m = starttls.wait_messages(1, 10)[0]
    h.check_eq(m.auth_user, USER, "the smarthost saw the configured user")

    h.step("implicit TLS + AUTH (port-465 style)")
    qid = sinks.send(t, "a@client.example", ["u@implicit.example"], sinks.body("implicit"))
    d = sinks.wait_delivery(t, qid, "u@implicit.example", "sent", timeout=20)[0]
    h.check(d.tls.startswith("TLSv1."), "over TLS", d.line)
    m = implicit.wait_messages(1, 10)[0]
    h.check_eq(m.auth_user, USER, "the implicit-TLS smarthost saw the user")

    h.step("a smarthost without STARTTLS never gets the credentials")
    qid = sinks.send(t, "a@client.example", ["u@notls.example"], sinks.body("notls"))
    d = sinks.wait_delivery(t, qid, "u@notls.example", "deferred", timeout=20)[0]
    h.check_eq(d.dsn, "4.7.4", "deferred 4.7.4 (TLS required, not offered)")
    h.check(not plain.auth_attempts and not plain.messages(), "no AUTH and no mail reached it",
            repr(plain.auth_attempts))
    h.check(PASSWORD not in t.log(), "the password is never logged")

    h.step("a refused password defers (4.7.8) and says so")
    qid = sinks.send(t, "a@client.example", ["u@badpass.example"], sinks.body("badpass"))
    d = sinks.wait_delivery(t, qid, "u@badpass.example", "deferred", timeout=20)[0]
    h.check_eq(d.dsn, "4.7.8", "deferred 4.7.8")
    h.check(f"authentication as {USER} failed" in d.reply and "535" in d.reply, "the reason is clear", d.line)
    h.check(strict.auth_attempts and not strict.auth_attempts[0][1], "the smarthost saw a failed AUTH")
    h.check(PASSWORD not in t.log(), "the password is never logged")

    h.step("--check refuses a password file others can read")
    os.chmod(secret, 0o644)
    out = subprocess.run([h.TERND, "--config", t.config_path, "--check"], capture_output=True, text=True,
                         timeout=30)
    h.check(out.returncode == 1 and "readable only by its owner" in out.stderr, "--check refuses it",
            out.stdout + out.stderr)


h.main(scenario)
