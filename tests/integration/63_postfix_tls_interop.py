#!/usr/bin/python3
"""TLS interop with a real MTA: a private Postfix instance (its own config and queue in the
scenario's directory, SMTP on loopback, the system's Postfix untouched).
  Postfix -> tern: Postfix relays (relayhost = tern, smtp_tls_security_level = encrypt) to
      tern over STARTTLS; tern routes the mail to a sink. Postfix's log shows the TLS
      version of its connection to tern, tern's log the session's.
  tern -> Postfix: tern's route for partner.example points at Postfix with tls: verify
      against the test CA (Postfix's certificate names postfix.interop.example); Postfix
      accepts and discards it, logging the TLS version; tern's delivery line says
      verified=pkix.
Needs root (Postfix's master runs as root and drops to the postfix user): skipped
otherwise."""
import os
import pwd
import shutil
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import harness as h  # noqa: E402
import sinks  # noqa: E402

SERVICES = ["pickup unix n - n 60 1 pickup", "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr", "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce", "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce", "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush", "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp", "relay unix - - n - - smtp",
            "showq unix n - n - - showq", "error unix - - n - - error",
            "retry unix - - n - - error", "discard unix - - n - - discard",
            "local unix - n n - - local", "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache", "tlsmgr unix - - n 1000? 1 tlsmgr",
            "postlog unix-dgram n - n - 1 postlogd"]


class Postfix:
    def __init__(self, ctx, port, relay_port, cert, ca_file):
        self.dir = ctx.path("postfix")
        self.etc = os.path.join(self.dir, "etc")
        self.log = os.path.join(self.dir, "log", "maillog")
        for d in ("etc", "spool", "data", "log"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        pw = pwd.getpwnam("postfix")
        os.chown(os.path.join(self.dir, "data"), pw.pw_uid, pw.pw_gid)
        for d in (ctx.dir, self.dir, os.path.join(self.dir, "spool")):
            os.chmod(d, 0o755)
        # Postfix reads its key as root; it lives with the rest of its configuration.
        key = os.path.join(self.etc, "key.pem")
        shutil.copy(cert.key, key)
        os.chmod(key, 0o600)
        main = f"""compatibility_level = 3.6
config_directory = {self.etc}
queue_directory = {self.dir}/spool
data_directory = {self.dir}/data
maillog_file = {self.log}
maillog_file_prefixes = {self.dir}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.interop.example
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relay_domains = partner.example
relay_recipient_maps =
transport_maps = inline:{{ partner.example=discard: }}
relayhost = [127.0.0.1]:{relay_port}
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = encrypt
smtp_tls_loglevel = 1
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert.cert}
smtpd_tls_key_file = {key}
smtpd_tls_loglevel = 1
smtp_tls_CAfile = {ca_file}
"""
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(f"127.0.0.1:{port} inet n - n - - smtpd\n")
            for s in SERVICES:
                f.write(s + "\n")
        ctx.cleanups.append(self.stop)
        out = subprocess.run(["postfix", "-c", self.etc, "start"], capture_output=True, text=True, timeout=60)
        h.check(out.returncode == 0, "the private Postfix starts", out.stdout + out.stderr)

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True, timeout=60)

    def maillog(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


def scenario(ctx):
    if os.geteuid() != 0 or shutil.which("postfix") is None:
        print("  ..   needs root and Postfix: skipped", flush=True)
        return "SKIP"
    ca = certs.TestCA(ctx.path("ca"))
    sink_port = sinks.pick_port(["127.0.0.2"])
    pf_port = sinks.pick_port(["127.0.0.1"])
    dns, dns_port = sinks.start_dns(ctx, [("postfix.interop.example", "A", "127.0.0.1")])
    sink = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", sink_port, "after-tern"))
    tcert = ca.issue([h.HOSTNAME], tag="tern")
    over = sinks.delivery_overrides(25, dns_port, retry=("30s", "60s", 2), tls_ca_file=ca.ca_file)
    over["tls"] = {"cert": tcert.cert, "key": tcert.key}
    over["routes"] = {"out.example": f"127.0.0.2:{sink_port}",
                      "partner.example": {"next_hop": f"postfix.interop.example:{pf_port}", "tls": "verify"}}
    t = ctx.tern(**over).start()
    pf = Postfix(ctx, pf_port, t.port, ca.issue(["postfix.interop.example"], tag="postfix"), ca.ca_file)
    sinks.wait_until(lambda: "starting the Postfix mail system" in pf.maillog() or
                     "daemon started" in pf.maillog(), 30, "Postfix started")

    h.step("Postfix relays to tern over STARTTLS")
    with smtplib.SMTP("127.0.0.1", pf_port, timeout=30) as s:
        s.sendmail("app@client.example", ["someone@out.example"], sinks.body("via postfix"))
    m = sink.wait_messages(1, 60)[0]
    h.check_eq(m.rcpt_tos, ["someone@out.example"], "tern passed Postfix's mail on")
    sinks.wait_until(lambda: "TLS connection established to 127.0.0.1" in pf.maillog(), 30,
                     "Postfix logs its TLS connection to tern")
    line = [ln for ln in pf.maillog().splitlines() if "TLS connection established to 127.0.0.1" in ln][-1]
    h.check(" TLSv1." in line, "Postfix's log shows the TLS version", line)
    h.check(b"with ESMTPS" in m.data and b"(using TLSv1." in m.data, "tern's Received: says ESMTPS and TLS",
            m.data[:600])
    t.wait_log("TLS established: TLSv1.")

    h.step("tern delivers to Postfix over STARTTLS, verified against the test CA")
    qid = sinks.send(t, "a@client.example", ["user@partner.example"], sinks.body("to postfix"))
    d = sinks.wait_delivery(t, qid, "user@partner.example", "sent", timeout=60)[0]
    h.check(d.tls.startswith("TLSv1.") and d.verified == "pkix", "tern's log: TLS, verified=pkix", d.line)
    sinks.wait_until(lambda: "TLS connection established from" in pf.maillog(), 30,
                     "Postfix logs the TLS connection from tern")
    line = [ln for ln in pf.maillog().splitlines() if "TLS connection established from" in ln][-1]
    h.check(" TLSv1." in line, "Postfix's log shows the TLS version", line)


h.main(scenario)
