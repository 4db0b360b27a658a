"""A real SMTP server for the Email tests (aiosmtpd): AUTH PLAIN/LOGIN against a user
list, plain, STARTTLS or implicit TLS, every accepted message written to --out as
<n>.eml with <n>.json (envelope). Recipients at reject.example get a permanent 550.

Prints "READY <port>" once listening (port 0 picks a free one)."""

import argparse
import asyncio
import json
import os
import socket
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Capture:
    def __init__(self, out, delay):
        self.out = out
        self.delay = delay
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().endswith("@reject.example"):
            return "550 5.1.1 <%s>: Recipient address rejected: no such user" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        # A slow server: the mail is accepted only after the delay.
        if self.delay:
            await asyncio.sleep(self.delay)
        self.n += 1
        base = os.path.join(self.out, "%06d" % self.n)
        with open(base + ".eml.part", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json", "w") as f:
            json.dump(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "login": session.auth_data if isinstance(session.auth_data, str) else None,
                },
                f,
            )
        os.rename(base + ".eml.part", base + ".eml")
        return "250 Message accepted for delivery"


def authenticator(users):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        if users.get(login) == auth_data.password.decode():
            return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    return check


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", choices=["none", "starttls", "ssl/tls"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--users", default="", help="login:password,login:password")
    p.add_argument("--out", required=True)
    p.add_argument("--delay-ms", type=int, default=0)
    a = p.parse_args()
    users = dict(u.split(":", 1) for u in a.users.split(",") if u)
    ctx = None
    if a.mode != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
    handler = Capture(a.out, a.delay_ms / 1000.0)

    def factory():
        return SMTP(
            handler,
            hostname="smtp.test",
            tls_context=ctx if a.mode == "starttls" else None,
            require_starttls=a.mode == "starttls",
            authenticator=authenticator(users),
            auth_required=True,
            # Over implicit TLS aiosmtpd cannot tell the socket is encrypted.
            auth_require_tls=a.mode == "starttls",
        )

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", a.port))
    sock.listen(64)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory, sock=sock, ssl=ctx if a.mode == "ssl/tls" else None
    )
    print("READY %d" % sock.getsockname()[1], flush=True)
    # Ends when the test closes our stdin (or dies).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


asyncio.run(main())
