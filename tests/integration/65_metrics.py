#!/usr/bin/python3
"""The Prometheus endpoint (metrics.listen): scraped over HTTP while mail flows, every
sample line parsed (name, labels, value), the counters agree with what happened (a message
received and delivered, a refusal counted by reply) and with `ternctl stats`; anything but
a well-formed GET /metrics gets 400, 404 or 405 and the connection closes; a client that
sends nothing is dropped."""
import json
import os
import re
import socket
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+|\+Inf|NaN)$')


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        h.check_eq(r.status, 200, "GET /metrics status")
        h.check(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), "exposition content type")
        text = r.read().decode()
    samples, bad = {}, []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m is None:
            bad.append(line)
            continue
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    h.check(not bad and samples, "every sample line is well-formed", repr(bad[:3]))
    return samples


def raw(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2"])
    dns, dns_port = sinks.start_dns(ctx, [("m.example", "MX", (10, "mx.m.example")), ("mx.m.example", "A", "127.0.0.2")])
    sink = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "m"))
    mport = h.free_port()
    over = sinks.delivery_overrides(port, dns_port)
    over["metrics"] = {"listen": f"127.0.0.1:{mport}"}
    t = ctx.tern(**over).start()
    t.wait_log(f"metrics: listening on http://127.0.0.1:{mport}/metrics")

    h.step("a delivery and a refusal are counted")
    before = scrape(mport)
    h.check_eq(before["tern_messages_received_total"], 0.0, "nothing received yet")
    q = sinks.send(t, "a@client.example", ["u@m.example"], sinks.body("metrics"))
    sinks.wait_delivery(t, q, "u@m.example", "sent", timeout=20)
    with t.session(source="127.0.0.5") as c:  # not a relay client: relaying refused
        c.expect("MAIL FROM:<x@outside.example>", 250)
        c.expect("RCPT TO:<y@elsewhere.example>", 550, "5.7.1")
    after = sinks.wait_until(lambda: (lambda s: s if s.get('tern_deliveries_total{status="sent"}', 0) >= 1
                                      and any(k.startswith("tern_smtp_rejects_total") for k in s) else None)(
        scrape(mport)), 10, "the counters moved")
    h.check_eq(after["tern_messages_received_total"], 1.0, "received")
    h.check(after['tern_connections_total{direction="in"}'] >= 2, "inbound connections counted")
    h.check(after['tern_delivery_delay_seconds_bucket{le="+Inf"}'] == 1.0, "one delay observed")
    h.check(after["tern_delivery_delay_seconds_count"] == 1.0, "histogram count")
    st = json.loads(sinks.ternctl(t, "stats", "--json").stdout)
    h.check_eq(st["delivered"], int(after['tern_deliveries_total{status="sent"}']), "ternctl stats agrees")
    sink.wait_messages(1, 10)

    h.step("anything else: 400/404/405 and close")
    for req, code in [(b"POST /metrics HTTP/1.0\r\n\r\n", b"405"), (b"GET /other HTTP/1.0\r\n\r\n", b"404"),
                      (b"EHLO x\r\n\r\n", b"400"), (b"GET /metrics HTTP/1.0\r\n" + b"X: " + b"a" * 9000, b"400")]:
        out = raw(mport, req)
        h.check(out.startswith(b"HTTP/1.0 " + code), f"{req[:20]!r} gets {code.decode()}", out[:80])
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{mport}/", timeout=10)
        h.fail("GET / should be 404")
    except urllib.error.HTTPError as e:
        h.check_eq(e.code, 404, "urllib sees 404")
    h.step("a silent client is dropped")
    with socket.create_connection(("127.0.0.1", mport), timeout=15) as s:
        s.settimeout(15)
        h.check(s.recv(10) == b"", "closed without an answer")


h.main(scenario)
