"""Helpers for the MTA-STS scenarios (94-96): an HTTPS policy server (Python's http.server
with ssl, a certificate from the test CA naming every mta-sts.DOMAIN it serves) on a
loopback address, and the DNS records and ternd settings that point tern at it."""
import http.server
import os
import socketserver
import threading

import harness as h
import sinks

POLICY_PATH = "/.well-known/mta-sts.txt"


def policy(mode, mx, max_age=86400):
    """A policy file's text (LF line ends)."""
    lines = ["version: STSv1", f"mode: {mode}"] + [f"mx: {m}" for m in mx] + [f"max_age: {max_age}"]
    return "\n".join(lines) + "\n"


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class PolicyServer:
    """Serves /.well-known/mta-sts.txt per Host (mta-sts.DOMAIN). `answers[domain]` is
    (status, body, headers); `hits` lists (domain, path) of every request."""

    def __init__(self, address, port, ssl_context):
        self.address = address
        self.port = port
        self.lock = threading.Lock()
        self.answers = {}
        self.hits = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                domain = host[len("mta-sts."):] if host.startswith("mta-sts.") else host
                with outer.lock:
                    outer.hits.append((domain, self.path))
                    status, body, headers = outer.answers.get(domain, (404, "not here\n", {}))
                data = body.encode() if isinstance(body, str) else body
                if self.path != POLICY_PATH:
                    status, data, headers = 404, b"no such path\n", {}
                self.send_response(status)
                hdrs = {"Content-Type": "text/plain"}
                hdrs.update(headers)
                for k, v in hdrs.items():
                    if v is not None and k != "Content-Length":
                        self.send_header(k, v)
                # Content_Length=None: no length, the body ends when the connection closes
                # (HTTP/1.0), so only the reader's own cap can stop it.
                if hdrs.get("Content-Length", "") is not None:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass  # the client hung up (as tern does past 64 KiB)

        self.httpd = _Server((address, port), Handler)
        self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, domain, body, status=200, **headers):
        with self.lock:
            self.answers[domain] = (status, body, {k.replace("_", "-"): v for k, v in headers.items()})

    def hits_for(self, domain):
        with self.lock:
            return [p for d, p in self.hits if d == domain]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def start_policy_server(ctx, ca, domains, address="127.0.0.20", port=None):
    """A PolicyServer on `address` (and `port`, default a free one) with a certificate from
    `ca` for mta-sts.D of every domain D in `domains`. Returns it; ctx cleans it up."""
    port = port or sinks.pick_port([address])
    issued = ca.issue([f"mta-sts.{d}" for d in domains], tag=f"mta-sts-{address}")
    server = PolicyServer(address, port, ca.server_context(issued))
    ctx.cleanups.append(server.stop)
    return server


def sts_records(domain, server, sts_id):
    """The TXT record and the policy host's address for `domain`."""
    recs = [(f"mta-sts.{domain}", "A", server.address)]
    if sts_id is not None:
        recs.append((f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={sts_id};"))
    return recs


def mta_sts_config(ctx, server, ca_file, name="ternd"):
    """ternd's mta_sts section: on, the policy server's port, its CA, a cache of its own."""
    return {"enabled": True, "cache_dir": os.path.join(ctx.dir, name, "sts"), "ca_file": ca_file,
            "https_port": server.port, "timeout": "5s"}


def tls_sink(ctx, address, port, name, ca, names, **kw):
    """An SMTP sink offering STARTTLS with a certificate from `ca` for `names`."""
    tls = ca.server_context(ca.issue(names)) if ca else None
    return sinks.add_sink(ctx, sinks.Sink(address, port, name, tls_context=tls, **kw))


def wait_hits(server, domain, n, timeout=15):
    return sinks.wait_until(lambda: len(server.hits_for(domain)) >= n, timeout,
                            f"{n} policy request(s) for {domain}")


def check_no_delivery_to(sink, rcpt, what):
    h.check(not any(rcpt in r for m in sink.messages() for r in m.rcpt_tos), what)
