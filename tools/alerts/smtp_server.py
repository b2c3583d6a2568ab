"""A real SMTP server (aiosmtpd) on loopback for syncctl's email alert tests.

Modes: --tls none (plain), starttls (STARTTLS required before MAIL), tls (implicit TLS).
With --user/--password, AUTH (PLAIN/LOGIN) is required and checked; over TLS only.
Every accepted message is written to --out as NNN.eml plus NNN.json (envelope, TLS, login).
Prints "READY <port>" on stdout once it accepts connections; stops on stdin EOF or SIGTERM.
With --gen-certs DIR it writes ca.pem, server.pem, server.key (openssl) and exits.
"""

import argparse
import warnings
import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def gen_certs(d):
    os.makedirs(d, exist_ok=True)
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=syncctl test CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr")
    with open(f"{d}/ext.cnf", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem",
        "-CAkey", f"{d}/ca.key", "-CAcreateserial", "-days", "2", "-out", f"{d}/server.pem",
        "-extfile", f"{d}/ext.cnf")


class Recorder:
    def __init__(self, out, implicit_tls=False):
        self.out = out
        self.implicit_tls = implicit_tls
        self.n = 0
        os.makedirs(out, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(self.out, f"{self.n:03d}")
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        ad = getattr(session, "auth_data", None)
        login = ad.login.decode() if isinstance(ad, LoginPassword) else None
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "tls": self.implicit_tls or session.ssl is not None, "login": login}, f)
        return "250 Message accepted for delivery"


class FailingRecorder(Recorder):
    """Refuses the first --fail-first messages with a transient 451, then accepts."""

    def __init__(self, out, fail_first, implicit_tls=False):
        super().__init__(out, implicit_tls)
        self.fail_left = fail_first

    async def handle_DATA(self, server, session, envelope):
        if self.fail_left > 0:
            self.fail_left -= 1
            return "451 4.3.0 Try again later"
        return await super().handle_DATA(server, session, envelope)


def main():
    warnings.filterwarnings("ignore")  # aiosmtpd deprecation chatter in test logs
    p = argparse.ArgumentParser()
    p.add_argument("--gen-certs")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls", choices=["none", "starttls", "tls"], default="none")
    p.add_argument("--certs")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--out")
    p.add_argument("--fail-first", type=int, default=0)
    a = p.parse_args()
    if a.gen_certs:
        gen_certs(a.gen_certs)
        return

    ctx = None
    if a.tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(f"{a.certs}/server.pem", f"{a.certs}/server.key")

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == a.user
              and auth_data.password.decode() == a.password)
        # handled=False: aiosmtpd sends the 235 or 535 reply itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    kwargs = {"hostname": "127.0.0.1", "port": a.port}
    smtp_kwargs = {}
    if a.user:
        smtp_kwargs.update(authenticator=authenticator, auth_required=True,
                           # Implicit TLS is TLS from the first byte, but aiosmtpd only
                           # counts STARTTLS as TLS when deciding whether to offer AUTH.
                           auth_require_tls=a.tls == "starttls")
    if a.tls == "starttls":
        smtp_kwargs.update(tls_context=ctx, require_starttls=True)
    elif a.tls == "tls":
        kwargs["ssl_context"] = ctx
        # The controller's readiness probe would speak plain text to a TLS port.
        kwargs["ready_timeout"] = 5
    implicit = a.tls == "tls"
    handler = (FailingRecorder(a.out, a.fail_first, implicit) if a.fail_first
               else Recorder(a.out, implicit))
    controller = Controller(handler, server_kwargs=smtp_kwargs, **kwargs)
    controller.start()
    print(f"READY {controller.port}", flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
