#!/usr/bin/python3
"""Issue 8 item 14: a local application opening many concurrent connections from an address
in relay.networks is not limited by max_connections_per_client (only by max_connections);
other clients still are; limits.relay_networks_per_client_limit: apply limits relay-network
clients too (checked after a SIGHUP reload)."""
import time

import harness as h

PER_CLIENT = 5
MANY = 40


def open_many(t, n, source=None):
    conns = []
    for _ in range(n):
        c = t.connect(source)
        conns.append(c)
    return conns, [c.read_reply() for c in conns]


def close_all(conns):
    for c in conns:
        c.close()


def scenario(ctx):
    t = ctx.tern(limits={"max_connections_per_client": str(PER_CLIENT), "max_connections": "100"},
                 relay={"networks": ["127.0.0.1/32"], "domains": ["partner.example"]})
    t.start()

    h.step(f"{MANY} concurrent connections from 127.0.0.1 (relay.networks), per-client limit {PER_CLIENT}")
    conns, replies = open_many(t, MANY)
    try:
        codes = [r.code for r in replies]
        h.check_eq(codes.count(220), MANY, "every connection from the relay network is greeted")
        # They are real sessions: each can run a command.
        for i, c in enumerate(conns):
            c.expect("NOOP", 250, what=f"connection {i + 1} works")

        h.step("a client outside relay.networks is still limited")
        others, oreplies = open_many(t, PER_CLIENT + 1, source="127.0.0.2")
        try:
            ocodes = [r.code for r in oreplies]
            h.check_eq(ocodes[:PER_CLIENT], [220] * PER_CLIENT, f"the first {PER_CLIENT} from 127.0.0.2")
            h.expect_reply(oreplies[PER_CLIENT], 421, "4.7.0", f"connection {PER_CLIENT + 1} from 127.0.0.2")
        finally:
            close_all(others)
    finally:
        close_all(conns)

    h.step("relay_networks_per_client_limit: apply (after a reload)")
    t.config["limits"]["relay_networks_per_client_limit"] = "apply"
    t.write_config()
    t.reload()
    # Closed connections are released asynchronously: retry until the count is back to 0.
    deadline = time.monotonic() + 15
    for attempt in range(100):
        conns, replies = open_many(t, PER_CLIENT + 1)
        codes = [r.code for r in replies]
        close_all(conns)
        if codes[:PER_CLIENT] == [220] * PER_CLIENT or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    h.check_eq(codes[:PER_CLIENT], [220] * PER_CLIENT, f"the first {PER_CLIENT} from 127.0.0.1")
    h.expect_reply(replies[PER_CLIENT], 421, "4.7.0", f"connection {PER_CLIENT + 1} from 127.0.0.1 is refused")
    h.check("too many connections from your address" in replies[PER_CLIENT].text, "the per-client reason",
            replies[PER_CLIENT].text)
    t.stop()


h.main(scenario)
