#!/usr/bin/python3
"""Basic accept: smtplib and swaks messages are queued byte-exact behind tern's Received:
header; Message-ID:/Date: are added only for relay clients and only when missing."""
import os
import stat
import subprocess

import harness as h

ORIGINAL = (b"From: Alice <alice@client.example>\r\n"
            b"To: Bob <bob@partner.example>\r\n"
            b"Subject: basic accept\r\n"
            b"Message-ID: <basic-1@client.example>\r\n"
            b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n"
            b"\r\n"
            b"Hello Bob,\r\n"
            b".a line that starts with a dot (stuffed on the wire)\r\n"
            b"..two dots\r\n"
            b".\tdot tab\r\n"
            b"  leading spaces and trailing spaces   \r\n"
            b"\r\n"
            b"8-bit: gr\xc3\xbc\xc3\x9fe, \xe2\x82\xac\r\n"
            b"-- \r\n"
            b"Alice\r\n")

NO_IDS = (b"From: alice@client.example\r\n"
          b"To: someone@victim.example\r\n"
          b"Subject: no message-id, no date\r\n"
          b"\r\n"
          b"body line\r\n")

ONLY_DATE = (b"From: alice@client.example\r\n"
             b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
             b"Subject: date but no message-id\r\n"
             b"\r\n"
             b"body\r\n")

# Lower-case header names count too.
LOWER_IDS = (b"message-id: <lower@client.example>\r\n"
             b"date: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
             b"Subject: lower case names\r\n"
             b"\r\n"
             b"body\r\n")


def scenario(ctx):
    t = ctx.tern()
    t.start()

    h.step("smtplib: EHLO, MAIL BODY=8BITMIME, RCPT, DATA")
    code, text, qid = h.send_smtplib(t.port, "alice@client.example", ["bob@partner.example"],
                                     ORIGINAL, mail_options=["BODY=8BITMIME"])
    h.check_eq(code, 250, "end of data reply code")
    h.check(text.startswith("2.0.0 Ok: queued as ") and qid is not None,
            "reply is '250 2.0.0 Ok: queued as ID'", text)
    q = t.queue()
    h.check_eq(sorted(q), [qid], "msg/ holds exactly the acknowledged id")
    m = q[qid]
    h.check_eq(m.sender, "alice@client.example", "sender record")
    h.check_eq(m.rcpt_addresses(), ["bob@partner.example"], "rcpt records")
    h.check_eq(m.mail_params, ["BODY=8BITMIME"], "mail-param records")
    h.check_eq(m.fields["client-address"], "127.0.0.1", "client-address")
    h.check_eq(m.fields["client-helo"], h.CLIENT_HELO, "client-helo")
    h.check_eq(m.fields["client-relay"], "yes", "client-relay yes for 127.0.0.1")
    h.check_eq(m.fields["protocol"], "ESMTP", "protocol ESMTP")
    h.check_eq(len(m.data), m.data_size, "data-size equals the stored byte count")
    h.check_stored(m, ORIGINAL, added=(), what="smtplib message")
    h.check(b"\r\n\tfor <bob@partner.example>; " in m.data.split(b"\r\n\r\n")[0],
            "Received: names the single recipient")
    fmode = stat.S_IMODE(os.stat(os.path.join(t.msg_dir(), qid)).st_mode)
    h.check_eq(oct(fmode), oct(0o640), "queue file mode 0640")
    for sub in ("", "msg", "tmp", "corrupt"):
        dmode = stat.S_IMODE(os.stat(os.path.join(t.queue_dir, sub)).st_mode)
        h.check_eq(oct(dmode), oct(0o750), f"queue dir {sub or '.'} mode 0750")
    h.check_eq(t.tmp_files(), [], "tmp/ is empty")

    h.step("swaks, once")
    data_file = ctx.path("swaks.eml")
    swaks_original = (b"From: carol@client.example\r\n"
                      b"To: dave@partner.example\r\n"
                      b"Subject: via swaks\r\n"
                      b"Message-ID: <swaks-1@client.example>\r\n"
                      b"Date: Tue, 25 Nov 2025 11:00:00 +0000\r\n"
                      b"\r\n"
                      b"sent by swaks\r\n"
                      b".leading dot\r\n"
                      b"last line\r\n")
    # swaks converts LF to CRLF and always appends "\r\n." itself: the file has no final
    # newline, so the data on the wire is exactly swaks_original + ".\r\n".
    with open(data_file, "wb") as f:
        f.write(swaks_original.replace(b"\r\n", b"\n")[:-1])
    p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(t.port),
                        "--helo", h.CLIENT_HELO, "--from", "carol@client.example",
                        "--to", "dave@partner.example", "--data", "@" + data_file,
                        "--timeout", "10"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    h.check_eq(p.returncode, 0, "swaks exit status")
    ids = [line.split()[-1] for line in out.splitlines()
           if "250 2.0.0 Ok: queued as " in line]
    h.check(len(ids) == 1, "swaks saw '250 2.0.0 Ok: queued as ID'", out[-800:])
    sid = ids[0]
    m = t.queue().get(sid)
    h.check(m is not None, f"msg/{sid} exists")
    h.check_eq(m.sender, "carol@client.example", "swaks sender")
    h.check_eq(m.rcpt_addresses(), ["dave@partner.example"], "swaks rcpt")
    h.check_stored(m, swaks_original, added=(), what="swaks message")

    h.step("relay client without Message-ID:/Date: gets both added")
    code, text, qid = h.send_smtplib(t.port, "alice@client.example",
                                     ["someone@victim.example"], NO_IDS)
    h.check_eq(code, 250, "accepted")
    h.check_stored(t.queue()[qid], NO_IDS, added=("Message-ID", "Date"), what="no ids")

    h.step("relay client with only Date: gets only Message-ID: added")
    code, text, qid = h.send_smtplib(t.port, "alice@client.example",
                                     ["someone@victim.example"], ONLY_DATE)
    h.check_eq(code, 250, "accepted")
    h.check_stored(t.queue()[qid], ONLY_DATE, added=("Message-ID",), what="only date")

    h.step("relay client with lower-case message-id:/date: gets nothing added")
    code, text, qid = h.send_smtplib(t.port, "alice@client.example",
                                     ["someone@victim.example"], LOWER_IDS)
    h.check_eq(code, 250, "accepted")
    h.check_stored(t.queue()[qid], LOWER_IDS, added=(), what="lower-case ids")

    h.step("non-relay client (127.0.0.5) to a relay domain: nothing added")
    code, text, qid = h.send_smtplib(t.port, "x@remote.example", ["bob@partner.example"],
                                     NO_IDS, source="127.0.0.5")
    h.check_eq(code, 250, "accepted from 127.0.0.5 for partner.example")
    m = t.queue()[qid]
    h.check_eq(m.fields["client-address"], "127.0.0.5", "client-address 127.0.0.5")
    h.check_eq(m.fields["client-relay"], "no", "client-relay no")
    h.check_stored(m, NO_IDS, added=(), what="non-relay client")

    h.step("HELO (not EHLO): protocol SMTP")
    with t.session(ehlo=False) as c:
        r = h.send_raw_message(c, "a@client.example", ["b@partner.example"],
                               h.dot_stuff(ORIGINAL))
        qid = r.queue_id()
        h.check(qid is not None, "queued after HELO", repr(r))
        c.expect("QUIT", 221)
    m = t.queue()[qid]
    h.check_eq(m.fields["protocol"], "SMTP", "protocol SMTP after HELO")
    h.check_stored(m, ORIGINAL, what="HELO message")

    h.step("queue file escaping: '%', quoted local part with a space, parameters")
    with t.session() as c:
        c.expect('MAIL FROM:<odd%name@client.example> BODY=7BIT SIZE=100', 250, "2.1.0")
        c.expect('RCPT TO:<"john doe"@partner.example>', 250, "2.1.5")
        c.expect("RCPT TO:<x%y@partner.example>", 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(h.dot_stuff(ORIGINAL))
        r = c.read_reply()
        h.expect_reply(r, 250, "2.0.0", "message with odd addresses")
        qid = r.queue_id()
    raw = open(os.path.join(t.msg_dir(), qid), "rb").read()
    h.check(b"\nsender <odd%25name@client.example>\n" in raw, "'%' in the sender is written %25")
    h.check(b'\nrcpt <"john%20doe"@partner.example>\n' in raw, "a space in an address is %20")
    h.check(b"\nmail-param BODY=7BIT\nmail-param SIZE=100\n" in raw, "mail-param records in order")
    m = t.queue()[qid]
    h.check_eq(m.sender, "odd%name@client.example", "sender round-trips")
    h.check_eq(m.rcpt_addresses(), ['"john doe"@partner.example', "x%y@partner.example"],
               "recipients round-trip")
    h.check_stored(m, ORIGINAL, what="odd-address message")

    h.check_eq(len(t.queue()), 8, "eight messages queued in all")
    h.check_eq(t.tmp_files(), [], "tmp/ is empty")
    t.stop()


h.main(scenario)
