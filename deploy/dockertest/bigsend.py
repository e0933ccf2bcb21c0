#!/usr/bin/env python3
"""Sends one large message through STARTTLS and AUTH PLAIN, pausing mid-DATA.

usage: bigsend.py HOST PORT USER PASSWORD SUBJECT MBYTES HALFWAY_FILE GO_FILE

After half the body it creates HALFWAY_FILE and waits (60 s at most) for
GO_FILE, so the caller can stop the server while the message is in flight;
then it sends the rest and prints the server's final reply as
"REPLY <code> <text>" (or "REPLY none <error>" when the connection broke).
"""
import os
import smtplib
import ssl
import sys
import time

host, port, user, password, subject = sys.argv[1:6]
mbytes = int(sys.argv[6])
halfway, go = sys.argv[7], sys.argv[8]

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
try:
    s = smtplib.SMTP(host, int(port), timeout=120)
    s.ehlo("bigsend.dockertest.invalid")
    s.starttls(context=ctx)
    s.ehlo("bigsend.dockertest.invalid")
    s.login(user, password)
    code, msg = s.mail(user)
    if code != 250:
        print("REPLY", code, msg.decode(errors="replace"))
        sys.exit(0)
    code, msg = s.rcpt("bob@example.net")
    if code != 250:
        print("REPLY", code, msg.decode(errors="replace"))
        sys.exit(0)
    code, msg = s.docmd("DATA")
    if code != 354:
        print("REPLY", code, msg.decode(errors="replace"))
        sys.exit(0)
    s.send(("From: %s\r\nTo: bob@example.net\r\nSubject: %s\r\n\r\n" % (user, subject)).encode())
    line = b"x" * 998 + b"\r\n"
    lines = mbytes * 1024 * 1024 // len(line)
    chunk = line * 64
    for i in range(0, lines, 64):
        if i == (lines // 2) // 64 * 64:
            open(halfway, "w").close()
            deadline = time.time() + 60
            while not os.path.exists(go) and time.time() < deadline:
                time.sleep(0.1)
        s.sock.sendall(chunk)
    s.sock.sendall(b".\r\n")
    code, msg = s.getreply()
    print("REPLY", code, msg.decode(errors="replace"))
except (OSError, smtplib.SMTPException) as e:
    print("REPLY none", repr(e))
