#!/usr/bin/python3
"""kumod-inject.py PORT N SESSIONS OUTFILE [DOMAIN...]: send N one-recipient
messages over SESSIONS parallel SMTP connections (several messages per
connection) and append each recipient to OUTFILE right after its 250, so a
test knows exactly which messages the server acknowledged. Stops quietly
when the server goes away. Used by the kumod-*.sh integration tests."""
import smtplib, sys, threading

port, n, sessions, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
domains = sys.argv[5:] or ["a.example.test"]
lock = threading.Lock()
fp = open(out, "a", buffering=1)
body = ("Subject: crash test\r\n\r\n" + ("x" * 70 + "\r\n") * 14).encode()

def worker(k):
    i = k
    s = None
    while i < n:
        try:
            if s is None:
                s = smtplib.SMTP("127.0.0.1", port, timeout=30)
                s.ehlo("injector.test")
            rcpt = "r%d@%s" % (i, domains[i % len(domains)])
            s.sendmail("s@src.test", [rcpt], body)
            with lock:
                fp.write(rcpt + "\n")
            i += sessions
        except (smtplib.SMTPException, OSError):
            return

ts = [threading.Thread(target=worker, args=(k,)) for k in range(sessions)]
for t in ts: t.start()
for t in ts: t.join()
