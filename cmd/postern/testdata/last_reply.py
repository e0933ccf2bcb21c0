#!/usr/bin/env python3
"""A raw SMTP client for the last-reply tests (lastreply_e2e_test.go).

  last_reply.py pipeline HOST PORT SOURCE_IP < PAYLOAD
      STARTTLS, EHLO, then PAYLOAD in one write (PIPELINING); prints what
      the server sends until it closes, as JSON {"replies": ...}.

  last_reply.py shutdown HOST PORT LOGIN PASSWORD finish|stall
      Two sessions after STARTTLS and AUTH: "idle" waits, "busy" is half
      way through a DATA. Prints READY, waits for a line on stdin (the test
      sends SIGTERM first), then reads the idle session until it closes;
      "finish" sends the rest of the message, "stall" sends nothing more;
      then reads the busy session until it closes. Prints JSON
      {"idle": ..., "busy": ...}.

Certificates are not verified (the test's own); the server closing the
connection with a reset is reported as "<RESET>" after what was read.
"""
import base64
import json
import socket
import ssl
import sys

TIMEOUT = 60


def read_reply(f):
    """One reply (all its lines) from a file made by makefile('rb')."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise EOFError("connection closed, got %r" % b"".join(lines))
        lines.append(line)
        if line[3:4] != b"-":
            return b"".join(lines).decode("latin-1")


def expect(f, code):
    reply = read_reply(f)
    if not reply.startswith(code):
        raise SystemExit("want %s, got %r" % (code, reply))
    return reply


def starttls(host, port, source_ip=None):
    src = (source_ip, 0) if source_ip else None
    raw = socket.create_connection((host, int(port)), timeout=TIMEOUT, source_address=src)
    f = raw.makefile("rb")
    expect(f, "220")
    raw.sendall(b"EHLO client.test\r\n")
    expect(f, "250")
    raw.sendall(b"STARTTLS\r\n")
    expect(f, "220")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    f = s.makefile("rb")
    s.sendall(b"EHLO client.test\r\n")
    expect(f, "250")
    return s, f


def until_close(s, f):
    """Everything the server sends until it closes."""
    out = b""
    try:
        while True:
            b = f.read1(65536)
            if not b:
                break
            out += b
    except ConnectionResetError:
        out += b"<RESET>"
    return out.decode("latin-1")


def auth(s, f, login, password):
    ir = base64.b64encode(b"\0" + login.encode() + b"\0" + password.encode())
    s.sendall(b"AUTH PLAIN " + ir + b"\r\n")
    expect(f, "235")


def pipeline(host, port, source_ip):
    payload = sys.stdin.buffer.read()
    s, f = starttls(host, port, source_ip)
    s.sendall(payload)
    print(json.dumps({"replies": until_close(s, f)}))


def shutdown(host, port, login, password, mode):
    idle, idle_f = starttls(host, port)
    auth(idle, idle_f, login, password)
    busy, busy_f = starttls(host, port)
    auth(busy, busy_f, login, password)
    busy.sendall(b"MAIL FROM:<" + login.encode() + b">\r\n")
    expect(busy_f, "250")
    busy.sendall(b"RCPT TO:<friend@example.test>\r\n")
    expect(busy_f, "250")
    busy.sendall(b"DATA\r\n")
    expect(busy_f, "354")
    busy.sendall(b"Subject: shutdown " + mode.encode() + b"\r\n\r\nfirst half\r\n")
    print("READY", flush=True)
    sys.stdin.readline()
    result = {"idle": until_close(idle, idle_f)}
    if mode == "finish":
        busy.sendall(b"second half\r\n.\r\n")
    result["busy"] = until_close(busy, busy_f)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "pipeline":
        pipeline(*sys.argv[2:5])
    elif sys.argv[1] == "shutdown":
        shutdown(*sys.argv[2:7])
    else:
        raise SystemExit("usage: see the docstring")
