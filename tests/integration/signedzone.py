"""A DNSSEC-signed test zone served by a real NSD on a loopback port, made fresh by each
scenario (signatures expire, so a signed zone is never committed): ldns-keygen makes a KSK
and a ZSK, ldns-signzone signs, NSD serves. The KSK's DNSKEY file is the trust anchor a
scenario hands to ternd (dns.trust_anchor)."""
import os
import re
import shutil
import subprocess
import time

import harness as h


def available():
    """None when NSD and ldnsutils are installed, else what is missing."""
    missing = [t for t in ("nsd", "ldns-keygen", "ldns-signzone") if shutil.which(t) is None
               and not os.path.exists(f"/usr/sbin/{t}")]
    return ", ".join(missing) or None


def _tool(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


class SignedZone:
    def __init__(self, ctx, origin, records, tamper=()):
        """`records`: zone-file lines relative to `origin` (no SOA/NS: added here).
        `tamper`: (owner, rrtype, new rdata) changed in the signed file after signing, so
        their signatures no longer match (a bogus answer)."""
        self.origin = origin
        self.dir = ctx.path("zone-" + origin)
        os.makedirs(self.dir, exist_ok=True)
        zone = os.path.join(self.dir, origin + ".zone")
        with open(zone, "w") as f:
            f.write(f"$ORIGIN {origin}.\n$TTL 300\n"
                    f"@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n"
                    f"@ IN NS ns.{origin}.\nns IN A 127.0.0.1\n")
            for r in records:
                f.write(r + "\n")

        def run(*args):
            p = subprocess.run(args, cwd=self.dir, capture_output=True, text=True, timeout=60)
            h.check(p.returncode == 0, f"{args[0]} succeeds", p.stderr)
            return p.stdout.strip()

        ksk = run(_tool("ldns-keygen"), "-a", "ECDSAP256SHA256", "-k", origin)
        zsk = run(_tool("ldns-keygen"), "-a", "ECDSAP256SHA256", origin)
        # -n: NSEC3 denial, as most signed zones on the Internet use.
        run(_tool("ldns-signzone"), "-n", zone, ksk, zsk)
        self.trust_anchor = os.path.join(self.dir, ksk + ".key")
        signed = zone + ".signed"
        if tamper:
            text = open(signed).read()
            for owner, rrtype, rdata in tamper:
                fq = f"{owner}.{origin}." if owner != "@" else f"{origin}."
                pat = re.compile(rf"^({re.escape(fq)}\s+\d+\s+IN\s+{rrtype}\s+).*$", re.M)
                text, n = pat.subn(lambda m: m.group(1) + rdata, text)
                h.check(n >= 1, f"the signed zone has {owner} {rrtype} to tamper with")
            open(signed, "w").write(text)
        self.port = h.free_port()
        conf = os.path.join(self.dir, "nsd.conf")
        self.log = os.path.join(self.dir, "nsd.log")
        with open(conf, "w") as f:
            f.write(f"""server:
  ip-address: 127.0.0.1@{self.port}
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "{self.dir}"
  pidfile: "{self.dir}/nsd.pid"
  database: ""
  zonelistfile: "{self.dir}/zone.list"
  xfrdfile: "{self.dir}/xfrd.state"
  xfrdir: "{self.dir}"
  logfile: "{self.log}"
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: {origin}
  zonefile: {signed}
""")
        self.proc = subprocess.Popen([_tool("nsd"), "-d", "-c", conf], cwd=self.dir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        ctx.cleanups.append(self.stop)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                h.fail(f"nsd exited ({self.proc.returncode}): {self._log_text()}")
            if f"zone {origin} read with success" in self._log_text() and "nsd started" in self._log_text():
                break
            time.sleep(0.1)
        else:
            h.fail(f"nsd did not start within 30 s: {self._log_text()}")
        print(f"  ..   NSD serving signed {origin} on 127.0.0.1:{self.port}", flush=True)

    def _log_text(self):
        try:
            return open(self.log).read()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
