#!/usr/bin/python3
"""DNS resolver: tern's UnboundResolver (through tern_resolve) against a real DNS server on
127.0.0.1 (dnsserver.py) for every answer kind delivery has to tell apart: MX sets, A/AAAA,
null MX, NXDOMAIN, NODATA, SERVFAIL, a server that never answers, and broken records.

Standalone: exits 0 when every check passes. TERN_RESOLVE names the tool (default
/work/main/build/tests/tern_resolve). Every subprocess has a deadline."""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnsserver  # noqa: E402

TERN_RESOLVE = os.environ.get("TERN_RESOLVE") or "/work/main/build/tests/tern_resolve"
QUERY_TIMEOUT_MS = 1500
# A run that does not hit the timeout takes milliseconds; one that does takes the timeout.
# Either way this deadline is far beyond, and still short.
RUN_DEADLINE_S = 10

ZONE = [
    # Several preferences, a tie, and an upper-case exchange to canonicalize.
    ("mx.example", "MX", (10, "mx1.mx.example")),
    ("mx.example", "MX", (20, "mx2.mx.example")),
    ("mx.example", "MX", (20, "mx3.mx.example")),
    ("mx.example", "MX", (5, "MX0.Mx.EXAMPLE")),
    ("mx1.mx.example", "A", "127.0.0.2"),
    ("mx1.mx.example", "A", "127.0.0.3"),
    ("mx1.mx.example", "AAAA", "2001:db8::25"),
    ("alias.example", "CNAME", "mx1.mx.example"),
    ("null.example", "MX", (0, ".")),
    ("servfail.example", "SERVFAIL", None),
    ("drop.example", "DROP", None),
    ("malformed.example", "MALFORMED", None),
    ("trailing.example", "TRAILING", None),
]


class Failure(AssertionError):
    pass


def check(cond, what, detail=""):
    if not cond:
        print(f"  FAIL {what}" + (f": {detail}" if detail else ""), flush=True)
        raise Failure(what)
    print(f"  ok   {what}", flush=True)


def step(text):
    print(f"- {text}", flush=True)


class Answer:
    def __init__(self, proc, elapsed):
        self.exit = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.elapsed = elapsed
        lines = proc.stdout.splitlines()
        self.head = {}
        if lines:
            # "rcode=R secure=S [detail=free text...]": detail runs to the end of the line.
            head, _, detail = lines[0].partition(" detail=")
            for field in head.split():
                k, _, v = field.partition("=")
                self.head[k] = v
            if detail:
                self.head["detail"] = detail
        self.records = lines[1:]

    @property
    def rcode(self):
        return self.head.get("rcode")

    def __repr__(self):
        return f"exit={self.exit} stdout={self.stdout!r} stderr={self.stderr[-500:]!r}"


def resolve(port, qtype, name, timeout_ms=QUERY_TIMEOUT_MS):
    cmd = [TERN_RESOLVE, "--forwarder", f"127.0.0.1@{port}", "--timeout-ms", str(timeout_ms),
           qtype, name]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_DEADLINE_S)
    except subprocess.TimeoutExpired:
        raise Failure(f"{' '.join(cmd)} still running after {RUN_DEADLINE_S}s")
    ans = Answer(proc, time.monotonic() - start)
    check(ans.exit == 0 and ans.rcode is not None,
          f"{qtype} {name}: tern_resolve answered ({ans.rcode}, {ans.elapsed * 1000:.0f} ms)",
          repr(ans))
    return ans


def unused_udp_port():
    # Bound then released: nothing listens there during the check that uses it.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scenario(server, port):
    step("MX with several preferences: every record comes back, exchanges canonical")
    a = resolve(port, "mx", "mx.example")
    check(a.rcode == "Ok", "rcode Ok", repr(a))
    check(a.head.get("secure") == "0", "not DNSSEC-secure (no trust anchor)", repr(a))
    check(sorted(a.records) == sorted(["mx 5 mx0.mx.example", "mx 10 mx1.mx.example",
                                       "mx 20 mx2.mx.example", "mx 20 mx3.mx.example"]),
          "all four MX records, lower case, no trailing dot", repr(a.records))

    step("A and AAAA")
    a = resolve(port, "a", "mx1.mx.example")
    check(a.rcode == "Ok" and sorted(a.records) == ["addr 127.0.0.2", "addr 127.0.0.3"],
          "both A records", repr(a))
    a = resolve(port, "aaaa", "mx1.mx.example")
    check(a.rcode == "Ok" and a.records == ["addr 2001:db8::25"], "the AAAA record", repr(a))
    a = resolve(port, "a", "alias.example")
    check(a.rcode == "Ok" and sorted(a.records) == ["addr 127.0.0.2", "addr 127.0.0.3"],
          "a CNAME is followed to its A records", repr(a))

    step("null MX (RFC 7505)")
    a = resolve(port, "mx", "null.example")
    check(a.rcode == "Ok" and a.records == ["mx 0 ."], "one MX with the root as exchange "
          "(host \"\", printed as '.')", repr(a))

    step("NXDOMAIN and NODATA")
    a = resolve(port, "mx", "nowhere.example")
    check(a.rcode == "NxDomain", "unknown name: NxDomain", repr(a))
    check(a.records == [], "no records with NxDomain", repr(a))
    a = resolve(port, "mx", "mx1.mx.example")
    check(a.rcode == "NoData", "name with only A/AAAA asked for MX: NoData", repr(a))
    a = resolve(port, "aaaa", "mx.example")
    check(a.rcode == "NoData", "name with only MX asked for AAAA: NoData", repr(a))

    step("SERVFAIL is temporary")
    a = resolve(port, "mx", "servfail.example")
    check(a.rcode == "TempFail", "SERVFAIL: TempFail", repr(a))
    check("SERVFAIL" in a.head.get("detail", ""), "detail names SERVFAIL", repr(a))

    step(f"a server that never answers: TempFail after tern's own {QUERY_TIMEOUT_MS} ms")
    seen_before = sum(1 for q in server.queries if q[0] == "drop.example")
    a = resolve(port, "mx", "drop.example")
    check(a.rcode == "TempFail" and a.head.get("detail") == "DNS timeout",
          "TempFail with detail 'DNS timeout'", repr(a))
    check(QUERY_TIMEOUT_MS / 1000 * 0.9 <= a.elapsed <= QUERY_TIMEOUT_MS / 1000 + 2.0,
          f"answered after about {QUERY_TIMEOUT_MS} ms", f"{a.elapsed:.3f}s")
    seen = sum(1 for q in server.queries if q[0] == "drop.example") - seen_before
    check(seen >= 1, "the query did reach the server (the timeout is not a local refusal)",
          f"{seen} queries seen")

    step("broken records")
    # The exchange name overruns the rdata: libunbound's own packet parser rejects the
    # whole reply (as a forwarder's garbage), so tern only ever sees SERVFAIL → TempFail.
    a = resolve(port, "mx", "malformed.example")
    check(a.rcode == "TempFail", "MX whose name overruns its rdata: TempFail (libunbound "
          "refuses the packet before tern sees the record)", repr(a))
    # Octets after a valid exchange, and A/AAAA of the wrong size, are passed through by
    # libunbound (it only walks the names it has to decompress): tern's parser refuses.
    a = resolve(port, "mx", "trailing.example")
    check(a.rcode == "Malformed", "MX with octets after the exchange: Malformed", repr(a))
    check("after the exchange" in a.head.get("detail", ""), "detail says why", repr(a))
    a = resolve(port, "a", "malformed.example")
    check(a.rcode == "Malformed" and "not 4" in a.head.get("detail", ""),
          "3-octet A: Malformed", repr(a))
    a = resolve(port, "aaaa", "malformed.example")
    check(a.rcode == "Malformed" and "not 16" in a.head.get("detail", ""),
          "15-octet AAAA: Malformed", repr(a))

    step("nothing listening at the forwarder: TempFail, bounded")
    a = resolve(unused_udp_port(), "mx", "mx.example")
    check(a.rcode == "TempFail", "TempFail", repr(a))
    check(a.elapsed <= QUERY_TIMEOUT_MS / 1000 + 2.0, "within the query timeout",
          f"{a.elapsed:.3f}s")


def main():
    print(f"20_dns_resolver: {TERN_RESOLVE}", flush=True)
    if not os.access(TERN_RESOLVE, os.X_OK):
        print(f"FAIL: {TERN_RESOLVE} is not an executable (build target tern_resolve)")
        return 1
    server, port = dnsserver.start_dns_server(ZONE)
    print(f"- DNS server on 127.0.0.1:{port} (UDP and TCP)", flush=True)
    try:
        scenario(server, port)
    except Failure as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    finally:
        server.stop()
    print("PASS 20_dns_resolver", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
