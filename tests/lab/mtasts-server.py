#!/usr/bin/python3
"""mtasts-server.py: a loopback HTTPS server for MTA-STS policy tests.

Binds 127.0.0.1:0, then writes its port to PORTFILE (write then rename, so
the file's existence means "listening"). GET /.well-known/mta-sts.txt with
Host: H answers DIR/H.txt as text/plain, unless --mode H=MODE says otherwise:
  serve     the file (the default)
  redirect  302 to https://H/elsewhere.txt
  404       404 Not Found
  huge      200 text/plain, 200 KiB without Content-Length
  html      the file, but as text/html
  slow      the file after a 3 s pause
Any other path, or a host with no file, gets 404. The process exits by itself
after --lifetime seconds so a crashed test cannot leave it behind.

usage: mtasts-server.py --cert C --key K --dir DIR --portfile F [--mode H=MODE]...
"""
import argparse
import http.server
import os
import ssl
import sys
import threading
import time

POLICY_PATH = "/.well-known/mta-sts.txt"


def make_handler(args, modes):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "mtasts-lab/1"

        def log_message(self, fmt, *a):  # quiet unless asked
            if args.verbose:
                sys.stderr.write("mtasts-server: " + (fmt % a) + "\n")

        def reply(self, status, body=b"", ctype="text/plain", length=True):
            if args.verbose:  # one line per answer, naming the Host, for tests that count fetches
                sys.stderr.write("mtasts-server: host %s path %s status %d\n"
                                 % (getattr(self, "host", "?"), self.path, status))
                sys.stderr.flush()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            if length:
                self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            host = (self.headers.get("Host") or "").split(":")[0].lower()
            self.host = host
            mode = modes.get(host, "serve")
            if self.path != POLICY_PATH or "/" in host or host.startswith("."):
                return self.reply(404, b"not found\n")
            if mode == "redirect":
                self.send_response(302)
                self.send_header("Location", "https://%s/elsewhere.txt" % host)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if mode == "404":
                return self.reply(404, b"not found\n")
            if mode == "huge":
                line = b"mx: " + b"a" * 60 + b".example.test\r\n"
                return self.reply(200, line * (200 * 1024 // len(line) + 1), length=False)
            try:
                with open(os.path.join(args.dir, host + ".txt"), "rb") as f:
                    body = f.read()
            except OSError:
                return self.reply(404, b"no policy\n")
            if mode == "slow":
                time.sleep(3)
            ctype = "text/html" if mode == "html" else "text/plain; charset=utf-8"
            return self.reply(200, body, ctype)

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--portfile", required=True)
    ap.add_argument("--mode", action="append", default=[])
    ap.add_argument("--lifetime", type=float, default=60.0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    modes = {}
    for m in args.mode:
        host, _, mode = m.partition("=")
        modes[host.lower()] = mode

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            # Clients that reject our certificate end the handshake; that is the test, not news.
            if args.verbose:
                super().handle_error(request, client_address)

    httpd = Server(("127.0.0.1", 0), make_handler(args, modes))
    httpd.daemon_threads = True
    # Handshake in the handler thread, so one stuck client cannot block accept().
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)

    timer = threading.Timer(args.lifetime, lambda: os._exit(0))
    timer.daemon = True
    timer.start()

    tmp = args.portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % httpd.server_address[1])
    os.rename(tmp, args.portfile)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
