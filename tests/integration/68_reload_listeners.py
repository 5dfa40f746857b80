#!/usr/bin/python3
"""SIGHUP changes the listeners without dropping sessions in progress: a listener added to
the config starts answering, one removed stops accepting, and a session open on the removed
one goes on to deliver its message; a listener that cannot be opened (the address is taken)
is logged and the others stay."""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def scenario(ctx):
    t = ctx.tern(routes={'"*"': "127.0.0.9:9"}).start()
    first = t.port
    second = h.free_port()

    h.step("a session open on the first listener")
    c = h.SmtpConn(first)
    c.greet()
    c.expect("MAIL FROM:<a@client.example>", 250)

    h.step("add a second listener and remove the first")
    t.config["listen"] = [{"address": f"127.0.0.1:{second}"}]
    t.write_config()
    t.reload()
    t.wait_log(f"smtpd: listening on 127.0.0.1:{second}")
    t.wait_log(f"smtpd: no longer listening on 127.0.0.1:{first}")
    with h.SmtpConn(second) as n:
        n.greet()
    h.check(h.connect_refused(first), "the removed listener no longer accepts")

    h.step("the session on the removed listener goes on")
    c.expect("RCPT TO:<x@partner.example>", 250)
    c.expect("DATA", 354)
    c.send("Subject: still here\r\n\r\nbody\r\n.\r\n")
    c.expect(None, 250, "2.0.0", "queued after the reload")
    c.expect("QUIT", 221)
    c.close()

    h.step("a listener that cannot be opened is reported; the others stay")
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    ctx.cleanups.append(busy.close)
    t.config["listen"] = [{"address": f"127.0.0.1:{second}"}, {"address": f"127.0.0.1:{taken}"}]
    t.write_config()
    t.reload()
    t.wait_log("the other listeners are in place")
    with h.SmtpConn(second) as n:
        n.greet()


h.main(scenario)
