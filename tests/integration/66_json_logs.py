#!/usr/bin/python3
"""log_format: json — every line ternd writes is one JSON object with ts, level and, for
component lines, component; the fields of the text lines are fields here (a delivery line
has id, to, relay, dsn, status). With JOURNAL_STREAM set (as under systemd) text lines carry
a "<N>" priority prefix and no timestamp of their own."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def json_lines(t):
    out = []
    for line in t.log().splitlines():
        if not line or line.startswith("===="):  # the harness's own markers
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            h.fail(f"not a JSON line: {line!r}")
    return out


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2"])
    dns, dns_port = sinks.start_dns(ctx, [("j.example", "MX", (10, "mx.j.example")), ("mx.j.example", "A", "127.0.0.2")])
    sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "j"))
    over = sinks.delivery_overrides(port, dns_port)
    over["log_format"] = "json"
    t = ctx.tern(**over).start()

    h.step("a delivery, logged as JSON")
    q = sinks.send(t, "a@client.example", ["u@j.example"], sinks.body("json"))
    sinks.wait_until(lambda: any(r.get("component") == "delivery" and r.get("status") == "sent"
                                 for r in json_lines(t)), 20, "a JSON delivery line")
    lines = json_lines(t)
    h.check(all("ts" in r and "level" in r and "msg" in r for r in lines), "every line has ts, level, msg")
    d = [r for r in lines if r.get("component") == "delivery" and r.get("status") == "sent"][0]
    h.check_eq(d["id"], q, "id")
    h.check_eq(d["to"], "u@j.example", "to")
    h.check(d["relay"].startswith("mx.j.example[127.0.0.2]:"), "relay", repr(d))
    h.check_eq(d["dsn"], "2.0.0", "dsn")
    h.check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", d["ts"]), "ts is RFC 3339", d["ts"])
    h.check(any(r.get("component") == "smtpd" and r.get("conn") for r in lines), "smtpd lines carry conn")
    t.stop()

    h.step("under systemd's journal: <N> prefixes, no timestamp")
    t2 = ctx.tern(name="journal", **sinks.delivery_overrides(port, dns_port))
    env = dict(os.environ, JOURNAL_STREAM="8:12345")
    with open(t2.log_path, "ab") as log:
        p = subprocess.Popen([h.TERND, "--config", t2.config_path] + h.root_flag(), stdin=subprocess.DEVNULL, stdout=log,
                             stderr=log, env=env)
    try:
        sinks.wait_until(lambda: "ternd: ready" in t2.log(), 15, "the journal-mode ternd is ready")
        first = [ln for ln in t2.log().splitlines() if ln][0]
        h.check(first.startswith("<6>ternd: starting:"), "info lines start <6> with no timestamp", first)
    finally:
        p.terminate()
        p.wait(timeout=20)


h.main(scenario)
