#!/usr/bin/python3
"""socks5-server.py: a small real SOCKS5 proxy for tests (RFC 1928, RFC 1929).

Binds 127.0.0.1:0, writes its port to --port-file (written then renamed, a
readiness signal), accepts no-auth or, with --users FILE (user:password
lines), only username/password. CONNECT goes to 127.0.0.0/8 targets only;
anything else gets reply 0x02 (not allowed) without any traffic. It also
follows KumoMTA's proxy convention for a source address: a BIND request
naming a 127.0.0.0/8 address binds the outgoing socket there (one success
reply), and the CONNECT that follows is made from it. Each request is logged
to --log ("CONNECT host:port", "BIND host:port", "AUTH user ok|fail") so
tests can check it. Exits by itself after --lifetime seconds (default 60).
"""
import argparse
import ipaddress
import os
import select
import socket
import struct
import sys
import threading
import time

log_lock = threading.Lock()


def log(path, line):
    with log_lock:
        with open(path, "a") as f:
            f.write(line + "\n")
            f.flush()


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("peer closed")
        data += chunk
    return data


def reply(s, rep, addr=None):
    """Send a reply; addr is (ip string, port) or None for 0.0.0.0:0."""
    if addr is None:
        s.sendall(b"\x05" + bytes([rep]) + b"\x00\x01" + b"\x00" * 6)
        return
    ip = ipaddress.ip_address(addr[0])
    atyp = 1 if ip.version == 4 else 4
    s.sendall(b"\x05" + bytes([rep, 0, atyp]) + ip.packed + struct.pack("!H", addr[1]))


def read_request(s):
    ver, cmd, _rsv, atyp = recv_exact(s, 4)
    if ver != 5:
        raise ValueError("bad version")
    if atyp == 1:
        host = socket.inet_ntop(socket.AF_INET, recv_exact(s, 4))
    elif atyp == 4:
        host = socket.inet_ntop(socket.AF_INET6, recv_exact(s, 16))
    elif atyp == 3:
        n = recv_exact(s, 1)[0]
        host = recv_exact(s, n).decode("ascii", "replace")
    else:
        return cmd, atyp, None, None
    (port,) = struct.unpack("!H", recv_exact(s, 2))
    return cmd, atyp, host, port


def loopback(host):
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


def resolve(host, atyp):
    """A domain target resolves to its first IPv4 address (localhost only in tests)."""
    if atyp != 3:
        return host
    try:
        return socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except OSError:
        return None


def relay(a, b, deadline):
    socks = [a, b]
    while time.time() < deadline:
        r, _, _ = select.select(socks, [], [], 0.5)
        for s in r:
            other = b if s is a else a
            try:
                data = s.recv(65536)
            except OSError:
                return
            if not data:
                try:
                    other.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            other.sendall(data)


def handle(c, args, users, deadline):
    c.settimeout(10)
    up = None
    try:
        ver, nmethods = recv_exact(c, 2)
        methods = recv_exact(c, nmethods)
        if ver != 5:
            return
        want = 2 if users is not None else 0
        if want not in methods:
            c.sendall(b"\x05\xff")
            return
        c.sendall(b"\x05" + bytes([want]))
        if want == 2:
            aver, ulen = recv_exact(c, 2)
            user = recv_exact(c, ulen).decode("utf-8", "replace")
            plen = recv_exact(c, 1)[0]
            pw = recv_exact(c, plen).decode("utf-8", "replace")
            ok = aver == 1 and users.get(user) == pw
            log(args.log, "AUTH %s %s" % (user, "ok" if ok else "fail"))
            c.sendall(b"\x01" + (b"\x00" if ok else b"\x01"))
            if not ok:
                return
        bound = None
        while True:
            cmd, atyp, host, port = read_request(c)
            if host is None:
                reply(c, 8)
                return
            shown = "[%s]:%d" % (host, port) if atyp == 4 else "%s:%d" % (host, port)
            if cmd == 2:
                log(args.log, "BIND %s" % shown)
                if bound is not None or not loopback(host):
                    reply(c, 2)
                    return
                bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    bound.bind((host, port))
                except OSError:
                    reply(c, 1)
                    return
                reply(c, 0, bound.getsockname())
                continue
            if cmd != 1:
                reply(c, 7)
                return
            log(args.log, "CONNECT %s" % shown)
            ip = resolve(host, atyp)
            if ip is None or not loopback(ip):
                reply(c, 2)
                return
            up = bound if bound is not None else socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            up.settimeout(5)
            try:
                up.connect((ip, port))
            except ConnectionRefusedError:
                reply(c, 5)
                return
            except OSError:
                reply(c, 1)
                return
            reply(c, 0, up.getsockname())
            break
        c.settimeout(None)
        up.settimeout(None)
        relay(c, up, deadline)
    except (OSError, EOFError, ValueError):
        pass
    finally:
        c.close()
        if up is not None:
            up.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--users")
    ap.add_argument("--lifetime", type=float, default=60)
    args = ap.parse_args()
    users = None
    if args.users:
        users = {}
        with open(args.users) as f:
            for line in f:
                line = line.rstrip("\n")
                if ":" in line:
                    u, p = line.split(":", 1)
                    users[u] = p
    deadline = time.time() + args.lifetime
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    open(args.log, "a").close()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, args.port_file)
    while time.time() < deadline:
        r, _, _ = select.select([ls], [], [], 0.5)
        if not r:
            continue
        c, _ = ls.accept()
        t = threading.Thread(target=handle, args=(c, args, users, deadline), daemon=True)
        t.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
