#!/usr/bin/python3
"""Config check and signals: --check exit codes and 'PATH:LINE: key: ...' errors; the daemon
refuses a bad config; SIGHUP applies a valid edit and survives an invalid one; SIGTERM lets a
transaction in flight finish, refuses new connections, then exits 0."""
import os
import re
import signal
import subprocess
import time

import harness as h

MSG = (b"From: a@client.example\r\nSubject: signals\r\nMessage-ID: <sig@client.example>\r\n"
       b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\nbody\r\n")


def run_ternd(args, timeout=10):
    p = subprocess.run([h.TERND] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def bad_configs(port, qdir):
    """(name, text, line, key, message fragment): each text has exactly one mistake."""
    base = ("hostname: relay.example.net\n"          # 1
            "listen:\n"                               # 2
            f"  - address: 127.0.0.1:{port}\n"        # 3
            f"queue_dir: {qdir}\n"                    # 4
            "queue_min_free: 0\n")                    # 5
    return [
        ("unknown top-level key", base + "relay_networks: [127.0.0.1/32]\n",
         6, "relay_networks", "unknown key"),
        ("unknown nested key", base + "limits:\n  max_errors: 5\n  max_mesage_size: 10000\n",
         8, "limits.max_mesage_size", "unknown key"),
        ("bad integer", base + "limits:\n  max_errors: lots\n",
         7, "limits.max_errors", "expected a non-negative integer"),
        ("duration without unit", base + "timeouts:\n  data: 3m\n  command: 300\n",
         8, "timeouts.command", "expected a duration"),
        ("bad network in a list", base + "relay:\n  networks:\n    - 127.0.0.1/32\n"
         "    - 127.0.0.1/33\n", 9, "relay.networks[1]", "expected a network"),
        ("bad word", base + "limits:\n  bare_newlines: ignore\n",
         7, "limits.bare_newlines", "expected reject or normalize"),
        ("bad size", base + "limits:\n  max_message_size: 10MB\n",
         7, "limits.max_message_size", "expected a size"),
    ]


def rcpt_verdict(t, source, rcpt="user@victim.example"):
    with t.session(source=source) as c:
        c.expect("MAIL FROM:<x@remote.example>", 250)
        r = c.cmd(f"RCPT TO:<{rcpt}>")
        c.cmd("QUIT")
    return r


def scenario(ctx):
    t = ctx.tern(relay={"networks": ["127.0.0.1/32"], "domains": ["partner.example"]})

    h.step("--check")
    rc, out, err = run_ternd(["--config", t.config_path, "--check"])
    h.check_eq(rc, 0, "--check on the good config exits 0")
    h.check("configuration is valid" in out, "--check says the configuration is valid", out + err)
    rc, out, err = run_ternd(["--config", ctx.path("does-not-exist.yaml"), "--check"])
    h.check_eq(rc, 1, "--check on a missing file exits 1")
    h.check("does-not-exist.yaml" in err, "and names the file", err)
    rc, out, err = run_ternd(["--check"])
    h.check_eq(rc, 1, "no --config exits 1")

    for i, (name, text, line, key, frag) in enumerate(bad_configs(t.port, t.queue_dir)):
        path = ctx.path(f"bad{i}.yaml")
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = run_ternd(["--config", path, "--check"])
        h.check_eq(rc, 1, f"--check with {name} exits 1")
        pat = re.escape(f"{path}:{line}: {key}: ") + ".*" + re.escape(frag)
        h.check(re.search(pat, err) is not None,
                f"{name}: message is '{path}:{line}: {key}: ...{frag}...'", err.strip())
        if i in (0, 2):
            rc, out, err2 = run_ternd(["--config", path] + h.root_flag())
            h.check_eq(rc, 1, f"daemon refuses to start with {name} (exit 1)")
            h.check(re.search(pat, err2) is not None, "and prints the same error", err2.strip())
            h.check(h.connect_refused(t.port), "nothing listens on the port")

    h.step("SIGHUP with a valid edit: 127.0.0.5 becomes a relay client")
    t.start()
    r = rcpt_verdict(t, "127.0.0.5")
    h.expect_reply(r, 550, "5.7.1", "before reload: 127.0.0.5 -> victim.example")
    held = t.session(source="127.0.0.5")  # a session opened under the old configuration
    t.config["relay"]["networks"] = ["127.0.0.0/8"]
    t.config["limits"] = {"max_message_size": "123456"}
    t.write_config()
    t.reload()
    h.check(True, "log says 'configuration reloaded'")
    r = rcpt_verdict(t, "127.0.0.5")
    h.expect_reply(r, 250, "2.1.5", "after reload: 127.0.0.5 -> victim.example")
    with t.session(source="127.0.0.5") as c:
        rr = c.cmd("EHLO client.example")
        h.check("SIZE 123456" in rr.lines, "new connections see the reloaded SIZE", repr(rr))
        r = h.send_raw_message(c, "x@remote.example", ["user@victim.example"], h.dot_stuff(MSG))
        relayed = r.queue_id()
    h.check_eq(t.queue()[relayed].fields["client-relay"], "yes", "client-relay yes after reload")
    r = held.cmd("MAIL FROM:<x@remote.example>")
    r = held.cmd("RCPT TO:<user@victim.example>")
    print(f"  info a session opened before the reload answers {r!r} (settings of its start)")
    held.close()

    h.step("SIGHUP with an invalid config: logged, previous config kept")
    bad_text = h.to_yaml(h.deep_merge(t.config, {
        "relay": {"networks": ["127.0.0.1/32"], "domains": ["partner.example"]}}))
    lines = bad_text.split("\n")
    lines.insert(1, "no_such_key: 1")
    t.write_config("\n".join(lines) + "\n")
    t.reload(expect="reload failed")
    log_line = [l for l in t.log().splitlines() if "reload failed" in l][-1]
    h.check(f"{t.config_path}:2: no_such_key: unknown key" in log_line,
            "the reload failure names file, line and key", log_line)
    time.sleep(0.2)
    h.check(t.running(), "ternd keeps running")
    r = rcpt_verdict(t, "127.0.0.5")
    h.expect_reply(r, 250, "2.1.5", "127.0.0.5 -> victim.example still relays (old config)")
    r = rcpt_verdict(t, "127.0.0.1")
    h.expect_reply(r, 250, "2.1.5", "127.0.0.1 -> victim.example still relays")
    code, text, qid = h.send_smtplib(t.port, "a@client.example", ["b@partner.example"], MSG)
    h.check_eq(code, 250, "still accepting mail")

    h.step("SIGTERM while a client is between RCPT and DATA")
    t.write_config()  # valid again, not that it matters now
    idle = t.session()
    busy = t.session()
    busy.expect("MAIL FROM:<a@client.example>", 250)
    busy.expect("RCPT TO:<b@partner.example>", 250)
    before = len(t.queue_ids())
    t.signal(signal.SIGTERM)
    t.wait_log("ternd: stop requested")
    r = idle.read_reply()
    h.expect_reply(r, 421, "4.3.2", "an idle session is told 421 at shutdown")
    idle.wait_closed()
    idle.close()
    h.check(h.connect_refused(t.port), "new connections are refused after SIGTERM")
    h.check(busy.silent_for(0.3), "the busy session is left alone")
    h.check(t.running(), "ternd waits for the transaction in flight")
    busy.expect("DATA", 354)
    busy.send(h.dot_stuff(MSG))
    r = busy.read_reply()
    h.expect_reply(r, 250, "2.0.0", "the transaction in flight completes")
    last = r.queue_id()
    r = busy.read_reply()
    h.expect_reply(r, 421, "4.3.2", "then the session is closed with 421")
    busy.wait_closed()
    busy.close()
    rc = t.wait_exit(10)
    h.check_eq(rc, 0, "ternd exits 0 after the last transaction")
    q = t.queue()
    h.check_eq(len(q), before + 1, "the last message is in the queue")
    h.check_stored(q[last], MSG, what="last message")
    h.check("ternd: stopped" in t.log(), "log says 'ternd: stopped'")

    h.step("timeouts.shutdown bounds the wait for idle transactions")
    t = ctx.tern("deadline", timeouts={"shutdown": "1s"})
    t.start()
    stuck = t.session()
    stuck.expect("MAIL FROM:<a@client.example>", 250)
    stuck.expect("RCPT TO:<b@partner.example>", 250)
    in_data = t.session()
    in_data.expect("MAIL FROM:<a@client.example>", 250)
    in_data.expect("RCPT TO:<b@partner.example>", 250)
    in_data.expect("DATA", 354)
    in_data.send(b"Subject: never finished\r\n\r\n" + (b"z" * 998 + b"\r\n") * 400)
    t0 = time.monotonic()
    t.signal(signal.SIGTERM)
    rc = t.wait_exit(10)
    took = time.monotonic() - t0
    h.check_eq(rc, 0, "ternd exits 0 after the shutdown deadline")
    h.check(0.8 <= took <= 5.0, f"exit came {took:.2f}s after SIGTERM (shutdown 1s)")
    for c in (stuck, in_data):
        c.wait_closed(timeout=5)
        c.close()
    h.check(True, "the stuck clients were disconnected")
    h.check_eq(t.queue_ids(), [], "nothing queued")
    print(f"  info tmp/ after the forced shutdown: {t.tmp_files()}")

    h.step("the listen address already in use: exit 1")
    first = ctx.tern("first")
    first.start()
    second = ctx.tern("second")
    second.config["listen"] = [{"address": f"127.0.0.1:{first.port}"}]
    second.write_config()
    rc, out, err = run_ternd(["--config", second.config_path] + h.root_flag())
    h.check_eq(rc, 1, "a second ternd on the same port exits 1")
    h.check(f"127.0.0.1:{first.port}" in err and "address already in use" in err, "and says why", err[-300:])
    h.check(first.running(), "the first one is unaffected")
    first.stop()

    h.step("a relative queue_dir is taken from the config file's directory")
    t = ctx.tern("relative", queue_dir="spool")
    h.check_eq(t.config["queue_dir"], "spool", "config says queue_dir: spool")
    t.start()  # with cwd /
    code, text, qid = h.send_smtplib(t.port, "a@client.example", ["b@partner.example"], MSG)
    h.check_eq(code, 250, "accepted")
    h.check_eq(t.queue_ids(), [qid], f"the message is in {t.queue_dir}/msg")
    h.check(not os.path.exists("/spool"), "nothing was created under /")
    t.stop()


h.main(scenario)
