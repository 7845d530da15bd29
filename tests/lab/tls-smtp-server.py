#!/usr/bin/python3
"""tls-smtp-server.py: a minimal implicit-TLS SMTP responder for DANE tests.

OpenSSL (through Python's ssl module) sends the --chain file exactly as given,
which GnuTLS servers do not: they trim a chain that does not verify. That is
what the forged DANE-TA chain test needs (attacker leaf, attacker CA, the real
TA certificate). Binds 127.0.0.1:0 and writes the port to --portfile (write
then rename). Speaks just enough SMTP after the handshake: 220 banner, EHLO,
QUIT. Exits by itself after --lifetime seconds.

usage: tls-smtp-server.py --chain PEM --key PEM --portfile FILE [--lifetime S]
"""
import argparse
import os
import socket
import ssl
import sys
import threading
import time


def serve(conn, ctx):
    try:
        conn.settimeout(10)
        tls = ctx.wrap_socket(conn, server_side=True)
        tls.sendall(b"220 lab.example.test ESMTP tls-smtp-server\r\n")
        buf = b""
        while True:
            data = tls.recv(4096)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                verb = line.strip().split(b" ")[0].upper()
                if verb in (b"EHLO", b"HELO"):
                    tls.sendall(b"250-lab.example.test\r\n250 8BITMIME\r\n")
                elif verb == b"QUIT":
                    tls.sendall(b"221 bye\r\n")
                    tls.close()
                    return
                else:
                    tls.sendall(b"502 not here\r\n")
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chain", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--portfile", required=True)
    ap.add_argument("--lifetime", type=float, default=120)
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.chain, args.key)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    tmp = args.portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.getsockname()[1])
    os.rename(tmp, args.portfile)
    deadline = time.monotonic() + args.lifetime
    srv.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(conn, ctx), daemon=True).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
