#!/usr/bin/env python3
"""A mail client that sets itself up from Thunderbird's autoconfig document.

Usage: follow_autoconfig.py URL CAFILE ADDRESS SUBJECT-PREFIX
The password comes from the environment (PASSWORD). The script fetches
URL?emailaddress=ADDRESS over HTTPS (verifying the server against CAFILE),
reads every outgoingServer of config-v1.1, and sends one message through
each with swaks, to exactly the host, port and socketType the document
names, logging in with the document's username. It prints one line per
server and exits non-zero on the first failure.
"""
import os
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

url, cafile, address, prefix = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=cafile)
with urllib.request.urlopen(url + "?" + urllib.parse.urlencode({"emailaddress": address}),
                            context=ctx, timeout=30) as resp:
    doc = ET.fromstring(resp.read())

servers = doc.findall("./emailProvider/outgoingServer")
if not servers:
    sys.exit("no outgoingServer in the document")
for srv in servers:
    host = srv.findtext("hostname")
    port = srv.findtext("port")
    sock = srv.findtext("socketType")
    user = srv.findtext("username")
    if srv.get("type") != "smtp" or srv.findtext("authentication") != "password-cleartext":
        sys.exit("unexpected server %s" % ET.tostring(srv))
    tls = {"SSL": "--tls-on-connect", "STARTTLS": "--tls"}.get(sock)
    if tls is None:
        sys.exit("socketType %r is neither SSL nor STARTTLS" % sock)
    subject = "%s %s %s" % (prefix, port, sock)
    cmd = ["swaks", "--timeout", "30", "--server", "%s:%s" % (host, port), tls,
           "--auth", "PLAIN", "--auth-user", user, "--auth-password", os.environ["PASSWORD"],
           "--from", address, "--to", "friend@example.test", "--header", "Subject: " + subject]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("swaks to %s:%s (%s) failed:\n%s%s" % (host, port, sock, out.stdout, out.stderr))
    print("sent %r via %s:%s %s as %s" % (subject, host, port, sock, user))
