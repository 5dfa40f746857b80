#!/usr/bin/python3
"""CHUNKING (RFC 3030) from a real client over raw sockets: EHLO offers CHUNKING (not
BINARYMIME); a message in several BDAT chunks is stored byte for byte like one sent with
DATA (dots and terminator-like lines in a chunk are content); BDAT pipelined with MAIL,
RCPT, NOOP and QUIT; BDAT 0 LAST; a bare LF in a chunk is refused with 550 5.6.0 as in
DATA; a chunk over the size limit gets 552 and its octets are read and discarded (never
taken for commands); later BDATs of a failed transaction get 503."""
import time

import harness as h

MAX_SIZE = 4000
MSG = (b"From: a@client.example\r\nTo: b@partner.example\r\nSubject: chunked\r\n"
       b"Message-ID: <chunk1@client.example>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\n"
       b"line one\r\n.\r\n.leading dot stays\r\n..two dots\r\nQUIT\r\nlast line\r\n")


def bdat(chunk, last=False):
    return b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk


def scenario(ctx):
    t = ctx.tern(limits={"max_message_size": str(MAX_SIZE)})
    t.start()

    h.step("EHLO offers CHUNKING, not BINARYMIME")
    with t.connect() as c:
        h.expect_reply(c.read_reply(), 220, None, "greeting")
        r = c.cmd("EHLO " + h.CLIENT_HELO)
        h.expect_reply(r, 250, None, "EHLO")
        h.check("CHUNKING" in r.lines, "CHUNKING offered", repr(r))
        h.check(not any("BINARYMIME" in l for l in r.lines), "BINARYMIME not offered", repr(r))
        c.expect("QUIT", 221)

    h.step("three chunks, one command at a time")
    with t.session() as c:
        c.expect("MAIL FROM:<a@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<b@partner.example>", 250, "2.1.5")
        parts = [MSG[:37], MSG[37:150], MSG[150:]]
        for i, p in enumerate(parts[:2]):
            c.send(bdat(p))
            r = c.read_reply()
            h.expect_reply(r, 250, "2.0.0", f"chunk {i + 1} ({len(p)} octets)")
            h.check(str(len(p)) in r.text, "the reply names the octet count", r.text)
        c.send(bdat(parts[2], last=True))
        r = c.read_reply(timeout=15)
        h.expect_reply(r, 250, "2.0.0", "BDAT LAST: queued")
        qid = r.queue_id()
        h.check(qid is not None, "the reply names the queue id", r.text)
        c.expect("QUIT", 221)
    h.check_stored(t.queue()[qid], MSG, what="chunked message")

    h.step("everything pipelined in one write, with BDAT 0 LAST and a second message")
    msg2 = MSG.replace(b"chunk1@", b"chunk2@")
    stream = (b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@partner.example>\r\n"
              + bdat(MSG[:100]) + bdat(MSG[100:]) + bdat(b"", last=True)
              + b"NOOP\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<c@partner.example>\r\n"
              + bdat(msg2, last=True) + b"QUIT\r\n")
    with t.session() as c:
        c.send(stream)
        rs = c.read_replies(9, timeout=15)
        want = [(250, "2.1.0"), (250, "2.1.5"), (250, "2.0.0"), (250, "2.0.0"), (250, "2.0.0"),
                (250, "2.0.0"), (250, "2.1.0"), (250, "2.1.5"), (250, "2.0.0")]
        for i, (r, (code, enh)) in enumerate(zip(rs, want)):
            h.expect_reply(r, code, enh, f"pipelined reply {i + 1}")
        q1, q2 = rs[4].queue_id(), rs[8].queue_id()
        h.check(q1 and q2 and q1 != q2, "two messages queued", f"{rs[4]!r} {rs[8]!r}")
        h.expect_reply(c.read_reply(), 221, None, "QUIT")
    queue = t.queue()
    h.check_stored(queue[q1], MSG, what="pipelined chunks + BDAT 0 LAST")
    h.check_stored(queue[q2], msg2, what="one BDAT LAST chunk")
    h.check_eq(queue[q2].rcpt_addresses(), ["c@partner.example"], "second message's recipient")

    h.step("a bare LF in a chunk: 550 5.6.0; later chunks 503, their octets skipped")
    before = set(t.queue_ids())
    with t.session() as c:
        c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<b@partner.example>\r\n"
               + bdat(b"Subject: bare\r\n\r\nsmuggle\n.\nMAIL FROM:<evil@x.example>\r\n")
               + bdat(b"RCPT TO:<victim@partner.example>\r\nDATA\r\n")
               + bdat(b"QUIT\r\n", last=True) + b"NOOP\r\n")
        rs = c.read_replies(6, timeout=15)
        h.expect_reply(rs[2], 550, "5.6.0", "chunk with a bare LF")
        h.expect_reply(rs[3], 503, "5.5.1", "next BDAT of the failed transaction")
        h.expect_reply(rs[4], 503, "5.5.1", "BDAT LAST of the failed transaction")
        h.expect_reply(rs[5], 250, "2.0.0", "NOOP: the chunks' octets were not commands")
        h.check(c.silent_for(0.3), "no reply to anything inside the chunks")
        c.expect("QUIT", 221)
    h.check_eq(set(t.queue_ids()), before, "nothing queued")

    h.step(f"a chunk over max_message_size ({MAX_SIZE}): 552, octets read and discarded")
    with t.session() as c:
        c.expect("MAIL FROM:<a@client.example>", 250)
        c.expect("RCPT TO:<b@partner.example>", 250)
        c.send(bdat(b"Subject: big\r\n\r\n" + b"x" * 1000 + b"\r\n"))
        h.expect_reply(c.read_reply(), 250, "2.0.0", "first chunk")
        big = (b"QUIT\r\n" * 700)[:MAX_SIZE]
        c.send(bdat(big) + bdat(b"tail\r\n", last=True) + b"NOOP\r\n")
        h.expect_reply(c.read_reply(), 552, "5.3.4", "chunk beyond the size limit")
        h.expect_reply(c.read_reply(), 503, "5.5.1", "BDAT LAST after the refused chunk")
        h.expect_reply(c.read_reply(), 250, "2.0.0", "NOOP: the QUIT lines inside were skipped")
        c.expect("MAIL FROM:<a@client.example>", 250, "2.1.0", what="a new transaction works")
        c.expect("RCPT TO:<b@partner.example>", 250)
        c.send(bdat(MSG, last=True))
        r = c.read_reply(timeout=15)
        h.expect_reply(r, 250, "2.0.0", "a good message after the refusal")
        c.expect("QUIT", 221)
    h.check_stored(t.queue()[r.queue_id()], MSG, what="message after a refused chunk")

    h.step("DATA inside a BDAT transaction: 503; RSET drops the started message")
    before = set(t.queue_ids())
    with t.session() as c:
        c.expect("MAIL FROM:<a@client.example>", 250)
        c.expect("RCPT TO:<b@partner.example>", 250)
        c.send(bdat(b"Subject: x\r\n"))
        h.expect_reply(c.read_reply(), 250, "2.0.0", "chunk")
        c.expect("DATA", 503, "5.5.1")
        c.expect("RSET", 250)
        c.expect("QUIT", 221)
    h.check_eq(set(t.queue_ids()), before, "nothing queued")
    # The dropped spool file is removed off the loop thread: a bounded wait.
    deadline = time.monotonic() + 10
    while t.tmp_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    h.check_eq(t.tmp_files(), [], "no spool file left behind")
    t.stop()


h.main(scenario)
