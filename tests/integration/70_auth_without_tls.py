#!/usr/bin/python3
"""SMTP AUTH where no TLS is active (RFC 4954 §4, issue 9): EHLO does not offer AUTH and
AUTH gets 538 5.7.11 whatever the mechanism, so no password crosses the network in the
clear; a client outside relay.networks still cannot relay; an auth: required listener
refuses MAIL with 530 5.7.0 even from relay.networks. Also the users file checks of
`ternd --check`: an $apr1$ line is refused naming file:line, a writable file refused."""
import os
import subprocess

import auth_helpers as a
import harness as h

OUTSIDE = "127.0.0.5"


def check_config(t):
    p = subprocess.run([h.TERND, "--config", t.config_path, "--check"], capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def scenario(ctx):
    t = a.auth_tern(ctx, {"app@example.net": "app-password"}, required_listener=True)
    users = t.config["auth"]["users_file"]

    h.step("ternd --check reads the users file: valid, then an $apr1$ line, then group-writable")
    rc, out = check_config(t)
    h.check_eq(rc, 0, "--check accepts the users file made by ternctl passwd")
    with open(users, "a") as f:
        f.write("# htpasswd's default\nold:$apr1$abcdefgh$0123456789abcdefghijkl\n")
    rc, out = check_config(t)
    h.check_eq(rc, 1, "--check refuses an $apr1$ hash")
    h.check(f"{users}:4: user old: unsupported password hash" in out, "the error names file:line and user", out)
    h.check("0123456789abcdefghijkl" not in out, "the error does not quote the hash", out)
    a.write_users(users, {"app@example.net": "app-password"}, mode=0o620)
    rc, out = check_config(t)
    h.check_eq(rc, 1, "--check refuses a group-writable users file")
    h.check("writable" in out, "and says why", out)
    os.chmod(users, 0o600)

    t.start()
    h.step("plaintext port: no AUTH in EHLO, AUTH refused with 538 before any exchange")
    with t.connect() as c:
        c.read_reply()
        r = c.cmd("EHLO client.example")
        h.expect_reply(r, 250, what="EHLO")
        h.check(not any(l.upper().startswith("AUTH") for l in r.lines), "EHLO offers no AUTH without TLS", r)
        c.expect("AUTH PLAIN AGFwcEBleGFtcGxlLm5ldABhcHAtcGFzc3dvcmQ=", 538, "5.7.11",
                 what="AUTH PLAIN with credentials, no TLS")
        c.expect("AUTH LOGIN", 538, "5.7.11", what="AUTH LOGIN, no TLS")
        c.expect("NOOP", 250, what="the session goes on")
    h.check("app-password" not in t.log() and "AGFwcEBleGFtcGxlLm5ldABhcHAtcGFzc3dvcmQ" not in t.log(),
            "the credentials are not in the log")

    h.step(f"a client at {OUTSIDE} (outside relay.networks) cannot relay without AUTH")
    with t.session(source=OUTSIDE) as c:
        c.expect("MAIL FROM:<app@example.net>", 250, "2.1.0")
        c.expect("RCPT TO:<someone@far.example>", 550, "5.7.1", what="relay refused")

    h.step("auth: required listener: MAIL refused with 530 5.7.0, even from relay.networks")
    with h.SmtpConn(t.submission_port) as c:
        c.read_reply()
        c.expect("EHLO client.example", 250)
        c.expect("MAIL FROM:<app@example.net>", 530, "5.7.0", what="MAIL before AUTH from 127.0.0.1")
        c.expect("QUIT", 221)
    h.check(t.log().count("(auth required)") == 1, "the log names the auth: required listener")
    t.stop()


h.main(scenario)
