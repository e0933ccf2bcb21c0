# Sends one message with Python's smtplib as a script would: the job (JSON,
# argv[1]) is written by cmd/postern/clients_e2e_test.go. A job with "raw"
# sends that file's bytes unchanged (sendmail with bytes: LF line ends stay
# LF on the wire); otherwise the message is composed with email.message.
import json
import smtplib
import ssl
import sys
from email.message import EmailMessage

job = json.load(open(sys.argv[1], encoding="utf-8"))
if job.get("version"):
    print("Python", sys.version.split()[0])
    sys.exit(0)
ctx = ssl.create_default_context(cafile=job["ca"])
if job["mode"] == "tls":
    s = smtplib.SMTP_SSL(job["host"], job["port"], context=ctx, timeout=60)
else:
    s = smtplib.SMTP(job["host"], job["port"], timeout=60)
    s.starttls(context=ctx)
s.ehlo()
# login() would try every mechanism the server offers; auth() uses the one
# chosen, as smtplib's documentation shows.
s.user, s.password = job["user"], job["pass"]
mech = job["mech"]
s.auth(mech, getattr(s, "auth_" + mech.lower()))
if job.get("raw"):
    with open(job["raw"], "rb") as f:
        s.sendmail(job["from"], [job["to"]], f.read())
else:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = job["from"], job["to"], job["subject"]
    m.set_content(job["body"])
    if job.get("attachment"):
        with open(job["attachment"], "rb") as f:
            m.add_attachment(f.read(), maintype="application", subtype="octet-stream",
                             filename="attachment.bin")
    s.send_message(m)
s.quit()
