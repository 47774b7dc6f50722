#!/usr/bin/python3
"""Generic stand-in for an image the sandbox cannot fetch (qui3tly-cloud scripts/sandbox).

Answers 200 with a small JSON body to any request on each port of STANDIN_HTTP_PORTS, and over TLS
(self-signed) on each of STANDIN_HTTPS_PORTS. Its arguments (the real image's command) are ignored.
"""
import http.server
import json
import os
import signal
import ssl
import sys
import threading

NAME = os.environ.get("STANDIN_NAME", "standin")
# Compact JSON: probes such as nextcloud's grep for `"installed":true`.
BODY = json.dumps({"standin": NAME, "status": "ok", "ok": 1, "installed": True}, separators=(",", ":")).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self, body=True):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY if body else b"")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def do_HEAD(self):
        self.do_GET(body=False)

    def log_message(self, fmt, *args):
        if os.environ.get("STANDIN_VERBOSE"):
            super().log_message(fmt, *args)


def serve(port, tls):
    srv = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain("/etc/standin/tls.crt", "/etc/standin/tls.key")
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    plain = [int(p) for p in os.environ.get("STANDIN_HTTP_PORTS", "").split()]
    tls = [int(p) for p in os.environ.get("STANDIN_HTTPS_PORTS", "").split()]
    for port in plain + tls:
        serve(port, port in tls)
    print(f"stand-in for {NAME}: http {plain}, https {tls}; ignoring args {sys.argv[1:]}", flush=True)
    threading.Event().wait()
